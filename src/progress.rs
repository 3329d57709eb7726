//! Progress for a person at a terminal: a spinner line on stderr while perses-oci waits (files
//! and bytes packed by push, environments planned, pods ready in a rollout). Off unless the
//! command line turns it on (`enable`), which it does only when stderr is a terminal, the
//! output is not JSON and no CI variable is set: pipes, logs and machine output never see it.
//! The work itself only bumps counters here (`PACKED`, `PLANNED`); drawing is indicatif's.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

static ENABLED: AtomicBool = AtomicBool::new(false);
static COLOR: AtomicBool = AtomicBool::new(false);

/// Files and bytes written into the layer by the current build.
pub static PACKED: Counter = Counter::new();
/// Environments planned so far by the current `plan`/`apply`.
pub static PLANNED: Counter = Counter::new();

/// Two counters (items and bytes), bumped by the work and read by a spinner.
pub struct Counter {
    items: AtomicU64,
    bytes: AtomicU64,
}

impl Counter {
    const fn new() -> Counter {
        Counter {
            items: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }
    pub fn add(&self, items: u64, bytes: u64) {
        self.items.fetch_add(items, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn reset(&self) {
        self.items.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
    }
    pub fn get(&self) -> (u64, u64) {
        (
            self.items.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// Turns progress on (see the module's rule for when); `color` follows NO_COLOR/--no-color.
pub fn enable(color: bool) {
    ENABLED.store(true, Ordering::Relaxed);
    COLOR.store(color, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether a terminal user should see progress, by the environment alone: CI systems set `CI`
/// (GitHub Actions, GitLab, Buildkite, Jenkins with the plugin), and `TERM=dumb` cannot redraw.
pub fn wanted_by_environment() -> bool {
    std::env::var_os("CI").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// One spinner line; every method is a no-op when progress is off.
pub struct Spinner(Option<ProgressBar>);

/// A spinner showing `message` and the time since it started.
pub fn spinner(message: impl Into<String>) -> Spinner {
    if !enabled() {
        return Spinner(None);
    }
    let template = if COLOR.load(Ordering::Relaxed) {
        "{spinner:.cyan} {msg} {elapsed:.dim}"
    } else {
        "{spinner} {msg} {elapsed}"
    };
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template(template).expect("a valid template"));
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(120));
    Spinner(Some(bar))
}

impl Spinner {
    pub fn set(&self, message: impl Into<String>) {
        if let Some(b) = &self.0 {
            b.set_message(message.into());
        }
    }
    /// Runs `f` (which prints) with the spinner hidden, so lines and spinner do not mix.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.0 {
            Some(b) => b.suspend(f),
            None => f(),
        }
    }
    /// A spinner that redraws `message(counter)` until it is dropped.
    pub fn watch(
        message: impl Fn((u64, u64)) -> String + Send + 'static,
        counter: &'static Counter,
    ) -> Watch {
        let spinner = spinner(message(counter.get()));
        let Some(bar) = spinner.0.clone() else {
            return Watch {
                spinner,
                stop: None,
            };
        };
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                rx.recv_timeout(Duration::from_millis(100))
            {
                bar.set_message(message(counter.get()));
            }
        });
        Watch {
            spinner,
            stop: Some(stop),
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// A spinner fed by a counter; cleared when dropped.
pub struct Watch {
    spinner: Spinner,
    stop: Option<std::sync::mpsc::Sender<()>>,
}

impl Watch {
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        self.spinner.suspend(f)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.take();
    }
}

/// `12.3 MiB`, for the spinners.
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
