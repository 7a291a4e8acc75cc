//! The `docker-token-server` binary (work in progress: see the server issue).

fn main() {
    eprintln!("docker-token-server: not implemented yet");
    std::process::exit(2);
}
