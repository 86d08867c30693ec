use std::time::Duration;

use clap::Parser;

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    // The demo's HTTP client, run inside container namespaces (not part of the CLI).
    if args.get(1).map(String::as_str) == Some("demo-fetch") {
        std::process::exit(demo_fetch(args.split_off(2)));
    }
    let cli = cnictl::cli::Cli::parse_from(args);
    if let Err(e) = cnictl::cli::run(cli) {
        eprintln!("Error: {e}");
        std::process::exit(1);
    }
}

/// `demo-fetch [--timeout-ms N] [--resolv-conf FILE] URL`: prints the body of a GET.
fn demo_fetch(args: Vec<String>) -> i32 {
    let mut timeout = Duration::from_secs(3);
    let mut resolv_conf = None;
    let mut url = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--timeout-ms" => {
                timeout =
                    Duration::from_millis(it.next().and_then(|v| v.parse().ok()).unwrap_or(3000))
            }
            "--resolv-conf" => resolv_conf = it.next().map(std::path::PathBuf::from),
            _ => url = Some(a),
        }
    }
    let Some(url) = url else {
        eprintln!("usage: cnictl demo-fetch [--timeout-ms N] [--resolv-conf FILE] URL");
        return 2;
    };
    match cnictl::demo::fetch::fetch(&url, resolv_conf.as_deref(), timeout) {
        Ok(body) => {
            print!("{body}");
            0
        }
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}
