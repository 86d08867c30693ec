//! What the plugin reads from a request, apart from its handlers, for the fuzz targets.

use cni::{Command, Error, Request};

use crate::config::{Config, del_paths, expected};

/// Everything this plugin reads from a request for its command (config keys, runtimeConfig,
/// CNI_ARGS, prevResult) before it acts, read and checked by the same functions its handlers
/// call first; touches no kernel, file or process (finding the sidecar's binary, which
/// looks at the filesystem, is left out). Every plugin crate has one (see
/// docs/architecture.md); the fuzz targets run it on arbitrary requests.
pub fn read_request(req: &Request) -> Result<(), Error> {
    match req.command() {
        Command::Add | Command::Check => {
            let config = Config::from_request(req)?;
            expected(req, &config).map(drop)
        }
        Command::Status => Config::from_request(req).map(drop),
        // DEL and GC read `dataDir` alone, leniently.
        Command::Del | Command::Gc => {
            del_paths(req);
            Ok(())
        }
        Command::Version => Ok(()),
    }
}
