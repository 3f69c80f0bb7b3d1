//! Helpers shared by the CLI's process-level tests.
#![allow(dead_code)]
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Spawns `cmd` with stdout piped and waits (at most `limit`) for its first line; stdout is
/// drained afterwards so the child never writes into a closed pipe.
pub fn spawn_until_first_line(cmd: &mut Command, limit: Duration) -> (Child, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let line = rx.recv_timeout(limit).expect("the process printed its first line in time");
    (child, line)
}
