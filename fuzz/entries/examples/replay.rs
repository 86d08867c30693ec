//! Runs fuzz inputs through their target's entry and prints each outcome, for looking at
//! what a corpus exercises or what a crash file does:
//!
//!   cargo run -p cni-fuzz-entries --example replay -- <target> <file>...

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(target) = args.next() else {
        eprintln!("usage: replay <target> <file>...");
        std::process::exit(2);
    };
    for file in args {
        let data = match std::fs::read(&file) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{file}: {e}");
                continue;
            }
        };
        if target == "control" {
            cni_fuzz_entries::control_message(&data);
            println!("{file}: ok");
            continue;
        }
        match cni_fuzz_entries::plugin_input(&target, &data) {
            Ok(()) => println!("{file}: ok"),
            Err(e) => println!("{file}: error {}: {}", e.code, e.msg),
        }
    }
}
