//! What a benchmark case costs the machine besides time: page faults taken
//! by this process (from `/proc/self/stat`), `madvise` and `mprotect` calls
//! (counted by `perf stat` on the tracepoints, machine-wide, since the
//! benchmark is the only thing running), and resident memory
//! (`/proc/self/status`, whose peak `clear_refs` resets).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The counts of one case, to divide by the requests it served.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub page_faults: u64,
    /// `None` when `perf` could not count (not installed, not permitted).
    pub madvise: Option<u64>,
    pub mprotect: Option<u64>,
}

impl Counts {
    /// "faults, madvise, mprotect" per request, as a table cell.
    pub fn per_request(&self, requests: f64) -> String {
        let per = |n: u64| format!("{:.1}", n as f64 / requests);
        let maybe = |n: Option<u64>| n.map_or_else(|| "-".to_owned(), per);
        format!(
            "{} {} {}",
            per(self.page_faults),
            maybe(self.madvise),
            maybe(self.mprotect)
        )
    }
}

/// Counting over one case of `duration`: start it just before the case.
pub struct Counting {
    faults_before: u64,
    perf: Option<Child>,
}

impl Counting {
    pub fn start(duration: Duration) -> Counting {
        let perf = Command::new("perf")
            .args(["stat", "-a", "-x,"])
            .args([
                "-e",
                "syscalls:sys_enter_madvise,syscalls:sys_enter_mprotect",
            ])
            .args(["--", "sleep"])
            .arg(format!("{:.3}", duration.as_secs_f64()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok();
        if perf.is_some() {
            // perf needs a moment to open its counters before the load starts.
            std::thread::sleep(Duration::from_millis(150));
        }
        Counting {
            faults_before: page_faults(),
            perf,
        }
    }

    /// The counts since `start`; waits for perf's window to close.
    pub fn finish(self) -> Counts {
        let page_faults = page_faults() - self.faults_before;
        let report = self
            .perf
            .and_then(|child| child.wait_with_output().ok())
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stderr).into_owned())
            .unwrap_or_default();
        // CSV lines: "count,unit,event,…"; "<not counted>" is not a number.
        let count = |event: &str| {
            report.lines().find_map(|line| {
                let mut fields = line.split(',');
                let value = fields.next()?;
                (fields.nth(1)? == event).then(|| value.parse().ok())?
            })
        };
        Counts {
            page_faults,
            madvise: count("syscalls:sys_enter_madvise"),
            mprotect: count("syscalls:sys_enter_mprotect"),
        }
    }
}

/// Minor and major page faults of this process so far, all threads.
fn page_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: state is the 3rd field,
    // minflt the 10th, majflt the 12th.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    field(10).unwrap_or(0) + field(12).unwrap_or(0)
}

/// This process's resident memory now and at its peak since the last
/// `reset_peak_rss`, in MiB.
pub fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

/// Starts the peak (`VmHWM`) over from the current resident memory.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
