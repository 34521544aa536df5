//! Starting a pod's process from its launch plan, as a container runtime starts a container:
//! its files written, in a process group of its own, stdout and stderr copied line by line to
//! the pod's log, and its end reported with the exit code a runtime reports (128 + the signal
//! when killed). When the main process ends, the rest of its group is killed, as a container's
//! processes end with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tracing::warn;

use crate::apiserver::container_logs::{LogWriter, Stream};
use crate::spark::launch::Launch;

/// How long the output of a pod's other processes may take to drain once its main process
/// and the rest of its process group are gone.
const DRAIN: Duration = Duration::from_secs(5);

/// A started process.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    /// Set once the process has been reaped: its pid may then be another process's, and is
    /// signalled no more.
    reaped: Arc<AtomicBool>,
}

impl Process {
    /// SIGTERM to the main process only, as a kubelet stops a container (the runtime signals
    /// its first process; the others end with it).
    pub fn terminate(&self) {
        if !self.reaped.load(Ordering::SeqCst) {
            signal(self.pid, false, libc::SIGTERM);
        }
    }

    /// SIGKILL to every process of the pod.
    pub fn kill(&self) {
        if !self.reaped.load(Ordering::SeqCst) {
            signal(self.pid, true, libc::SIGKILL);
        }
    }
}

/// Writes the plan's files and starts its process; `ended` is called with the exit code once
/// it and its output are done.
pub fn spawn(
    plan: &Launch,
    log: Arc<LogWriter>,
    ended: impl FnOnce(i32) + Send + 'static,
) -> std::io::Result<Process> {
    for d in &plan.dirs {
        std::fs::create_dir_all(d)?;
    }
    for (path, text) in &plan.files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    let mut env = plan.env.clone();
    env.entry("HOME".to_owned())
        .or_insert_with(|| plan.cwd.to_string_lossy().into_owned());
    let mut command = tokio::process::Command::new(&plan.program);
    command
        .args(&plan.args)
        .env_clear()
        .envs(&env)
        .current_dir(&plan.cwd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        // If the simulator itself goes, its processes go too.
        .kill_on_drop(true);
    // Killed if the simulator is (even by SIGKILL). The signal comes when the *thread* that
    // forked ends: here an async worker thread, which lives as long as the runtime does.
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag of the calling (child) process; it is
    // async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("the process ended before it had an id"))?;
    let process = Process {
        pid,
        reaped: Arc::new(AtomicBool::new(false)),
    };
    let out = child
        .stdout
        .take()
        .map(|o| pump(o, Stream::Stdout, log.clone()));
    let err = child
        .stderr
        .take()
        .map(|e| pump(e, Stream::Stderr, log.clone()));
    let reaped = process.reaped.clone();
    tokio::spawn(async move {
        let code = match child.wait().await {
            Ok(status) => exit_code(status),
            Err(e) => {
                warn!(pid, error = %e, "cannot wait for a pod's process");
                128
            }
        };
        // A container ends with its main process: so do the others of its group (the group
        // id is not reused while one of them lives).
        signal(pid, true, libc::SIGKILL);
        reaped.store(true, Ordering::SeqCst);
        let drain = async {
            if let Some(o) = out {
                let _ = o.await;
            }
            if let Some(e) = err {
                let _ = e.await;
            }
        };
        let _ = tokio::time::timeout(DRAIN, drain).await;
        log.finish();
        ended(code);
    });
    Ok(process)
}

/// Copies `reader`'s lines to the log until it ends.
fn pump(
    reader: impl AsyncRead + Unpin + Send + 'static,
    stream: Stream,
    log: Arc<LogWriter>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match lines.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
                    if let Err(e) = log.line(stream, line, Timestamp::now()) {
                        warn!(error = %e, "cannot write a pod's log");
                        break;
                    }
                }
            }
        }
    })
}

/// The exit code as a container runtime reports it: 128 + the signal when killed.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(128)
}

/// Sends `sig` to process `pid`, or to the whole group it leads.
fn signal(pid: u32, group: bool, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    let target = if group { -pid } else { pid };
    // SAFETY: kill(2) has no memory effects; the target is this pod's process or the group
    // the runtime made for it (`process_group(0)`), and one already gone is ESRCH.
    unsafe {
        libc::kill(target, sig);
    }
}
