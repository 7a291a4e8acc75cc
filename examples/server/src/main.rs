//! `docker-token-server`: a Docker/OCI registry token server that reads cesanta/docker_auth's
//! YAML configuration. Run `docker-token-server --help`.

mod admin;
mod cli;
mod config;
mod listen;
mod logfmt;
mod logging;
#[cfg(test)]
mod proptests;
mod quickstart;
mod robots;
mod serve;
mod store;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: every token request allocates and frees many
/// small buffers on two or more threads (see README "Performance" for the figures).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::run(args)
}
