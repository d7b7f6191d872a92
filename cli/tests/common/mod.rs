//! What the CLI's process-level tests share: child processes that die with the test (kill on
//! drop), `herald broker` with its control channel, `herald-probe` services, and their logs.

#![allow(dead_code)] // each test binary uses its own part of this

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `herald` binary.
pub const HERALD: &str = env!("CARGO_BIN_EXE_herald");
/// The probe service.
pub const PROBE: &str = env!("CARGO_BIN_EXE_herald-probe");

/// Consumer settings that keep a killed member's partitions from waiting long: the mock cluster
/// holds them for the session timeout.
pub const FAST_SESSION: &str = "session.timeout.ms=3000;heartbeat.interval.ms=500";

/// Polls `done` every 20 ms until it holds; panics naming `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// A directory of its own per test, removed at the end.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory named after the test.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("herald-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// A path inside it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A child process killed (SIGKILL) and reaped when dropped; its stdout lines are collected.
pub struct Proc {
    pub name: String,
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    lines: Option<mpsc::Receiver<String>>,
    pub stdin: Option<ChildStdin>,
}

impl Proc {
    /// Starts `command` with stdin piped, stdout collected and stderr written to `stderr`.
    pub fn spawn(name: &str, mut command: Command, stderr: &Path) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let reader = BufReader::new(child.stdout.take().unwrap());
        let collected = stdout.clone();
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { break };
                collected.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Self {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            stdout,
            lines: Some(rx),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stdout line so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// The next stdout line, within `limit`.
    pub fn next_line(&mut self, limit: Duration) -> String {
        self.lines
            .as_ref()
            .unwrap()
            .recv_timeout(limit)
            .unwrap_or_else(|e| panic!("{}: no line on stdout within {limit:?}: {e}", self.name))
    }

    /// Waits until a stdout line equals `line`.
    pub fn wait_for_line(&self, line: &str, limit: Duration) {
        wait_until(&format!("{} printed `{line}`", self.name), limit, || {
            self.stdout.lock().unwrap().iter().any(|l| l == line)
        });
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (graceful stop).
    pub fn terminate(&self) {
        // SAFETY: kill(2) on our own child's pid; it has not been reaped, so the pid is its own.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM to {} failed", self.name);
    }

    /// Waits for it to exit within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "{} did not exit within {limit:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `herald broker` in a process of its own.
pub struct Broker {
    pub proc: Proc,
    pub bootstrap: String,
}

impl Broker {
    /// Starts it and creates `topics` (`(name, partitions)`) through its control channel.
    pub fn start(dir: &TempDir, topics: &[(&str, i32)]) -> Self {
        let mut command = Command::new(HERALD);
        command.arg("broker").env("RUST_LOG", "info");
        let mut proc = Proc::spawn("herald broker", command, &dir.path("broker.err"));
        let first = proc.next_line(Duration::from_secs(20));
        let bootstrap = first
            .strip_prefix("bootstrap: ")
            .unwrap_or_else(|| panic!("the first line is `{first}`, not `bootstrap: HOST:PORT`"))
            .to_owned();
        let mut broker = Self { proc, bootstrap };
        for (name, partitions) in topics {
            broker.control_ok(&format!("topic {name} {partitions}"));
        }
        broker
    }

    /// Sends one control line and returns the reply line.
    pub fn control(&mut self, line: &str) -> String {
        let stdin = self.proc.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        self.proc.next_line(Duration::from_secs(10))
    }

    /// Sends one control line and asserts the reply is `ok`.
    pub fn control_ok(&mut self, line: &str) {
        let reply = self.control(line);
        assert_eq!(reply, "ok", "`{line}` was answered `{reply}`");
    }

    /// A `herald-probe` command pointed at this broker.
    pub fn probe(&self, log: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(PROBE);
        command
            .args(args)
            .env("KAFKA_BOOTSTRAP_SERVERS", &self.bootstrap)
            .env("PROBE_LOG", log)
            .env("RUST_LOG", "warn");
        command
    }

    /// Starts a consuming probe.
    pub fn consumer(&self, dir: &TempDir, name: &str, log: &Path, envs: &[(&str, &str)]) -> Proc {
        let mut command = self.probe(log, &["consume"]);
        command.env("KAFKA_PROPERTIES", FAST_SESSION);
        command.envs(envs.iter().copied());
        Proc::spawn(name, command, &dir.path(&format!("{name}.err")))
    }

    /// Starts a publishing probe.
    pub fn publisher(&self, dir: &TempDir, args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let mut all = vec!["publish"];
        all.extend_from_slice(args);
        let mut command = self.probe(&dir.path("publisher.log"), &all);
        command.envs(envs.iter().copied());
        Proc::spawn("publisher", command, &dir.path("publisher.err"))
    }

    /// `herald topics --json` output for `topic` and `group`.
    pub fn topics_json(&self, topic: &str, group: &str) -> serde_json::Value {
        let out = Command::new(HERALD)
            .args(["topics", "--json", "--topic", topic, "--group", group])
            .env("KAFKA_BOOTSTRAP_SERVERS", &self.bootstrap)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "herald topics failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The group's total lag on `topic` and the topic's total high watermark.
    pub fn lag_and_high(&self, topic: &str, group: &str) -> (i64, i64) {
        let json = self.topics_json(topic, group);
        let topic = &json["topics"][0];
        let high = topic["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["high"].as_i64().unwrap())
            .sum();
        (topic["groups"][0]["lag"].as_i64().unwrap(), high)
    }
}

/// The sequence numbers in a probe log, in the order handled.
pub fn handled(log: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(|l| {
            l.parse()
                .unwrap_or_else(|_| panic!("{}: `{l}` is not a sequence number", log.display()))
        })
        .collect()
}

/// How many lines a probe log has.
pub fn count(log: &Path) -> usize {
    std::fs::read(log)
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0)
}

/// The distinct sequence numbers of some probe logs.
pub fn unique(logs: &[&Path]) -> BTreeSet<u64> {
    logs.iter().flat_map(|l| handled(l)).collect()
}

/// The sequence numbers a publisher reported acknowledged (`ack FIRST LAST` lines).
pub fn acknowledged(lines: &[String]) -> BTreeSet<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("ack "))
        .flat_map(|range| {
            let (a, b) = range.split_once(' ').unwrap();
            a.parse::<u64>().unwrap()..=b.parse::<u64>().unwrap()
        })
        .collect()
}

/// The events a publisher reported unacknowledged (`failed K` lines).
pub fn failed(lines: &[String]) -> u64 {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("failed "))
        .map(|n| n.parse::<u64>().unwrap())
        .sum()
}
