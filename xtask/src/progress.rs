//! Terminal progress for long stages (indicatif), behind the libraries' `Progress` trait.

use std::sync::Mutex;
use std::time::Duration;

use autodl_artifacts::context::Progress;
use indicatif::{ProgressBar, ProgressStyle};

/// Shows a bar when the total is known, a spinner with elapsed time otherwise. Hidden when
/// standard error is not a terminal (indicatif's default), so logs stay clean.
#[derive(Default)]
pub struct Terminal {
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress for Terminal {
    fn start(&self, stage: &str, total: Option<u64>) {
        let bar = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "  {prefix} [{bar:30}] {pos}/{len} {elapsed} {wide_msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template(
                    "  {prefix} {spinner} {pos} done, {elapsed} {wide_msg}",
                )
                .expect("valid template"),
            ),
        };
        bar.set_prefix(stage.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        *self.bar.lock().expect("progress lock") = Some(bar);
    }

    fn update(&self, done: u64, message: &str) {
        if let Some(bar) = &*self.bar.lock().expect("progress lock") {
            bar.set_position(done);
            bar.set_message(message.to_string());
        }
    }

    fn finish(&self, message: &str) {
        if let Some(bar) = self.bar.lock().expect("progress lock").take() {
            bar.finish_and_clear();
            if !message.is_empty() {
                eprintln!("  {message}");
            }
        }
    }
}
