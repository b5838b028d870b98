//! The process runner: an [`Exec`] that runs each plugin in its own process group with a deadline. When
//! the deadline passes (or the plugin exits leaving children behind that hold its pipes), the whole group
//! is killed, so a hung plugin cannot hang the runtime. The deadline is the timeout of one `poll` over
//! the plugin's pipes and its pidfd, on the calling thread: no helper threads, no polling, so a normal
//! run costs no extra latency.

use std::ffi::OsString;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
pub(crate) use rustix::process::Signal;
use rustix::process::{Pid, PidfdFlags, pidfd_open};

use cni_core::exec::{Exec, ExecOutput};

/// Runs plugins as child processes with a timeout; stdout and stderr are captured.
#[derive(Debug, Clone)]
pub struct ProcessRunner {
    pub timeout: Duration,
    /// Where the plugin's stderr goes as well, once it has ended (libcni passes it through to the
    /// caller's stderr); `None`: it is only captured. The runtime never writes to the process's
    /// streams itself: the program that runs it says where.
    pub stderr: Option<fn(&[u8])>,
}

/// Sends `signal` to process group `pgid`, ignoring "no such process".
pub fn kill_group(pgid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// What a child produced before it exited or was killed.
#[derive(Debug)]
pub struct Captured {
    /// `None` when the deadline passed and the child's group was killed.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Captured {
    /// Exited with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// How the child ended, for error messages: "exited with status 3", "timed out and was killed".
    pub fn describe_end(&self) -> String {
        match self.status {
            None => "timed out and was killed".to_string(),
            Some(s) => match s.code() {
                Some(c) => format!("exited with status {c}"),
                None => format!("was killed by a signal ({s})"),
            },
        }
    }
}

/// How long the runner waits between looks at the child when the kernel has no pidfd (before Linux
/// 5.3, some sandboxes) and the child's pipes stay open: it only matters when the plugin exits leaving
/// children behind that hold its output.
const NO_PIDFD_SLICE: Duration = Duration::from_millis(10);

/// Without a pidfd, once the pipes are closed: the first wait for the exit that closed them to be
/// reapable (it nearly always is at once); each further wait doubles, up to [`NO_PIDFD_SLICE`].
const NO_PIDFD_FIRST_WAIT: Duration = Duration::from_micros(50);

/// After the group is killed, how long its pipes are still drained (a process that left the group
/// could hold them open for ever).
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// One pipe end being read to its end.
struct Sink<R> {
    pipe: Option<R>,
    buf: Vec<u8>,
}

impl<R: Read> Sink<R> {
    /// Reads what is there (the poll said so); end of file or an error closes the pipe.
    fn pull(&mut self) {
        if let Some(p) = self.pipe.as_mut() {
            let mut chunk = [0u8; 16384];
            match p.read(&mut chunk) {
                Ok(0) => self.pipe = None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => self.pipe = None,
            }
        }
    }
}

fn ready(fd: &PollFd<'_>) -> bool {
    !fd.revents().is_empty()
}

/// Runs `cmd` (program, arguments and environment as the caller set them) in its own process group,
/// feeds it `stdin` and collects its output. When `timeout` passes, the whole group is killed; after
/// the child exits, whatever is left of its group is killed too, so no grandchild keeps the pipes open.
/// `ETXTBSY` (a binary still being written) is retried a few times, as libcni does.
///
/// Everything happens on the calling thread: one `poll` over the child's three pipes and its pidfd
/// (so its exit is seen at once even while a grandchild holds the pipes), with the deadline as the
/// poll's timeout. No helper threads and no polling: a normal run costs no extra latency.
pub fn run(cmd: &mut Command, stdin: &[u8], timeout: Duration) -> std::io::Result<Captured> {
    run_with(cmd, stdin, timeout, true)
}

/// [`run`], with the pidfd left unused when `use_pidfd` is false (the path of kernels without one).
fn run_with(
    cmd: &mut Command,
    stdin: &[u8],
    timeout: Duration,
    use_pidfd: bool,
) -> std::io::Result<Captured> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut attempts = 0;
    let mut child = loop {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 5 => {
                attempts += 1;
                thread::sleep(Duration::from_millis(50 * attempts));
            }
            other => break other?,
        }
    };
    let pid = child.id();
    let deadline = Instant::now() + timeout;
    let pidfd = i32::try_from(pid)
        .ok()
        .filter(|_| use_pidfd)
        .and_then(Pid::from_raw)
        .and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok());
    // The input is written as the child reads it, never blocking: a child that does not read it and
    // fills its output pipe cannot dead-lock us; one that exits without reading it is not an error.
    let mut input = child.stdin.take().filter(|_| !stdin.is_empty());
    if let Some(Err(e)) = input.as_ref().map(|p| rustix::io::ioctl_fionbio(p, true)) {
        kill_group(pid, Signal::KILL);
        let _ = child.wait();
        return Err(e.into());
    }
    let mut written = 0;
    let mut out = Sink {
        pipe: child.stdout.take(),
        buf: Vec::new(),
    };
    let mut err = Sink {
        pipe: child.stderr.take(),
        buf: Vec::new(),
    };
    let mut status: Option<ExitStatus> = None;
    let mut timed_out = false;
    // Until the child is reaped, then until its pipes are drained (after its group is killed).
    let mut drain_until = None;
    let mut backoff = NO_PIDFD_FIRST_WAIT;
    loop {
        if status.is_some() && out.pipe.is_none() && err.pipe.is_none() {
            break;
        }
        let now = Instant::now();
        let limit = drain_until.unwrap_or(deadline);
        if now >= limit {
            if status.is_some() {
                break; // something outside the group holds the pipes: keep what was read
            }
            kill_group(pid, Signal::KILL);
            timed_out = true;
            status = Some(child.wait()?);
            drain_until = Some(Instant::now() + DRAIN_GRACE);
            continue;
        }
        let mut wait = limit - now;
        if status.is_none() && pidfd.is_none() {
            if out.pipe.is_none() && err.pipe.is_none() {
                wait = wait.min(backoff);
                backoff = (backoff * 2).min(NO_PIDFD_SLICE);
            } else {
                wait = wait.min(NO_PIDFD_SLICE);
            }
        }
        let ts = Timespec {
            tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(wait.subsec_nanos()),
        };
        let (in_ready, out_ready, err_ready, exited) = {
            let mut fds = Vec::with_capacity(4);
            let mut slots = [None; 4];
            if let Some(p) = input.as_ref() {
                slots[0] = Some(fds.len());
                fds.push(PollFd::new(p, PollFlags::OUT));
            }
            if let Some(p) = out.pipe.as_ref() {
                slots[1] = Some(fds.len());
                fds.push(PollFd::new(p, PollFlags::IN));
            }
            if let Some(p) = err.pipe.as_ref() {
                slots[2] = Some(fds.len());
                fds.push(PollFd::new(p, PollFlags::IN));
            }
            if let (None, Some(p)) = (status, pidfd.as_ref()) {
                slots[3] = Some(fds.len());
                fds.push(PollFd::new(p, PollFlags::IN));
            }
            match poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    kill_group(pid, Signal::KILL);
                    let _ = child.wait();
                    return Err(e.into());
                }
            }
            let hit = |i: usize| slots[i].is_some_and(|s| ready(&fds[s]));
            (hit(0), hit(1), hit(2), hit(3))
        };
        if in_ready && let Some(p) = input.as_mut() {
            match p.write(&stdin[written..]) {
                Ok(n) => written += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(_) => written = stdin.len(), // the child closed its input
            }
            if written >= stdin.len() {
                input = None; // closing it tells the child the input is complete
            }
        }
        if out_ready {
            out.pull();
        }
        if err_ready {
            err.pull();
        }
        if status.is_none()
            && (exited || pidfd.is_none())
            && let Some(s) = child.try_wait()?
        {
            status = Some(s);
            input = None;
            // Stragglers in the child's group would hold the pipes open.
            kill_group(pid, Signal::KILL);
            drain_until = Some(Instant::now() + DRAIN_GRACE);
        }
    }
    Ok(Captured {
        status: status.filter(|_| !timed_out),
        stdout: out.buf,
        stderr: err.buf,
    })
}

impl Exec for ProcessRunner {
    fn exec(&self, exe: &Path, env: &[(OsString, OsString)], stdin: &[u8]) -> std::io::Result<ExecOutput> {
        let mut cmd = Command::new(exe);
        cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
        let c = run(&mut cmd, stdin, self.timeout)?;
        if let Some(pass) = self.stderr
            && !c.stderr.is_empty()
        {
            pass(&c.stderr);
        }
        Ok(ExecOutput {
            success: c.status.is_some_and(|s| s.success()),
            status: match c.status {
                None => format!("timed out after {} s and was killed", self.timeout.as_secs_f32()),
                Some(s) => s.to_string(),
            },
            stdout: c.stdout,
            stderr: c.stderr,
        })
    }
}

#[cfg(test)]
mod tests;
