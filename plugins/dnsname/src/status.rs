//! STATUS: the sidecar answers, or it can be started (its binary runs, the store is
//! writable).

use cni::{Error, Request};
use cni_dns::control;

use crate::CONTROL_TIMEOUT;
use crate::config::Config;

pub fn status(req: &Request) -> Result<(), Error> {
    let config = Config::from_request(req)?;
    let launch = config.launch(req)?;
    if control::call(&config.paths, &control::Request::Ping, CONTROL_TIMEOUT).is_ok() {
        return Ok(());
    }
    // Not running: it can be started if the binary runs and the store is writable.
    let mut help = std::process::Command::new(&launch.bin);
    help.arg("--help");
    let runs = plugin_kit::run_bounded(help, None, plugin_kit::TOOL_TIMEOUT)
        .is_ok_and(|out| out.status.success());
    if !runs {
        return Err(Error::not_available(format!(
            "the DNS sidecar {} cannot run",
            launch.bin.display()
        )));
    }
    config
        .paths
        .create_root()
        .map_err(|e| Error::not_available(format!("the DNS record store is not writable: {e}")))?;
    Ok(())
}
