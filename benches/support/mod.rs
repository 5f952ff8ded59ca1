//! What the measurement benches share: the built-in endpoint in a child
//! process (this same executable, re-run with an environment variable set),
//! so the CPU time and memory a bench reads are the client's alone.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitCode, Stdio};

use llmperf::{MockScript, MockServer};

/// The child's side: serves `script`, prints the base URL, and stops when
/// the parent closes our stdin.
pub fn serve(script: MockScript) -> ExitCode {
    let server = match MockServer::start(script) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("cannot start the built-in endpoint: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", server.base_url());
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    ExitCode::SUCCESS
}

/// Re-runs this executable with `child_env` set (its `main` then calls
/// [`serve`]) and returns the child and the base URL it serves.
pub fn spawn_endpoint(child_env: &str) -> std::io::Result<(Child, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .env(child_env, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut url = String::new();
    if let Some(stdout) = child.stdout.take() {
        BufReader::new(stdout).read_line(&mut url)?;
    }
    Ok((child, url.trim().to_string()))
}
