//! Per-file progress: bars on a terminal, a few plain log lines otherwise
//! (Airflow and CI logs must not fill with carriage returns).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// `bars`: draw bars (stderr is a terminal and logs are text).
    pub fn new(bars: bool) -> Self {
        Self {
            multi: bars.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    pub fn file(&self, name: &str, size: Option<u64>) -> FileProgress {
        let bar = self.multi.as_ref().map(|m| {
            let bar = m.add(ProgressBar::new(size.unwrap_or(0)));
            bar.set_style(
                ProgressStyle::with_template("{msg:40!} {bar:30} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_message(name.to_string());
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        FileProgress {
            bar,
            name: name.to_string(),
            size,
            done: AtomicU64::new(0),
            logged_quarter: AtomicU64::new(0),
        }
    }
}

pub struct FileProgress {
    bar: Option<ProgressBar>,
    name: String,
    size: Option<u64>,
    done: AtomicU64,
    logged_quarter: AtomicU64,
}

impl FileProgress {
    pub fn inc(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
            return;
        }
        if let Some(size) = self.size.filter(|s| *s > 0) {
            let quarter = (done.min(size) * 4 / size).min(3);
            if quarter > self.logged_quarter.fetch_max(quarter, Ordering::Relaxed) {
                tracing::info!(file = %self.name, percent = quarter * 25, bytes = done, "downloading");
            }
        }
    }

    /// The bytes are all here but the file is not done: say what it waits
    /// for (a streamed upload's last parts), so a full bar does not look
    /// stuck.
    pub fn stage(&self, what: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("{} {what}", self.name)),
            None => tracing::info!(file = %self.name, "{what}"),
        }
    }

    pub fn finish(&self, status: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(format!("{} {status}", self.name));
        }
    }
}
