//! Progress bars on stderr (indicatif), fed from the engine's [`Event::Progress`] events: the
//! snapshot counts files; a database dump or restore, a downgrade and a restart with its
//! readiness wait show a spinner with the time so far. Only on a terminal, and never under
//! `--json`, `-q` or `NO_COLOR`.

use std::io::IsTerminal;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rollback_core::event::{Event, ProgressUnit};

/// Whether bars are drawn: stderr is a terminal, and neither `--json`, `-q` nor `NO_COLOR`.
pub fn wanted(json: bool, quiet: bool) -> bool {
    !json && !quiet && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// The bar of the step that reports progress now, if any.
#[derive(Default)]
pub struct Bars {
    current: Mutex<Option<(String, ProgressBar)>>,
}

impl Bars {
    /// Starts, moves or ends the bar.
    pub fn event(&self, event: &Event) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::Progress { step, unit, done, total, .. } => {
                if current.as_ref().is_none_or(|(s, _)| s != step) {
                    if let Some((_, bar)) = current.take() {
                        bar.finish_and_clear();
                    }
                    *current = Some((step.clone(), new_bar(step, *unit, *total)));
                }
                if let Some((_, bar)) = current.as_ref() {
                    bar.set_position(*done);
                }
            }
            Event::StepFinished { .. } => {
                // The step's own log line says what it did.
                if let Some((_, bar)) = current.take() {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        }
    }

    /// Runs `print` with the bar hidden, so a log line does not land inside it.
    pub fn suspend(&self, print: impl FnOnce()) {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        match current.as_ref() {
            Some((_, bar)) => bar.suspend(print),
            None => print(),
        }
    }
}

fn new_bar(step: &str, unit: ProgressUnit, total: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = if total.is_some() {
        format!("{{prefix:>16}} [{{bar:40}}] {{pos}}/{{len}} {} ({{elapsed}})", unit.as_str())
    } else {
        "{prefix:>16} {spinner} working ({elapsed})".to_owned()
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> ").tick_chars("-\\|/ "));
    }
    bar.set_prefix(step.to_owned());
    if total.is_none() {
        bar.enable_steady_tick(Duration::from_millis(120));
    }
    bar
}
