//! `metrics.csv`: one row per epoch (epoch, steps, d_loss, g_loss, d_real,
//! d_fake, seconds, steps_per_sec, and, on epochs with an evaluation
//! (`--eval-every`), fid, score, coverage, label_accuracy; empty otherwise)
//! under a header row, appended and flushed
//! after each epoch so that the rows of finished epochs survive a crash.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::report::{EpochReport, EvalFigures};

/// The header row.
pub const HEADER: &str =
    "epoch,steps,d_loss,g_loss,d_real,d_fake,seconds,steps_per_sec,fid,score,coverage,label_accuracy";

/// An open metrics file.
pub struct MetricsCsv {
    path: PathBuf,
    file: File,
}

impl MetricsCsv {
    /// Creates (or truncates) `path` and writes the header row.
    pub fn create(path: &Path) -> Result<MetricsCsv> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut csv = MetricsCsv {
            path: path.to_path_buf(),
            file,
        };
        csv.write_line(HEADER)?;
        Ok(csv)
    }

    /// Opens `path` to add rows after the ones it holds (a resumed run),
    /// writing the header first if the file is new or empty.
    pub fn append(path: &Path) -> Result<MetricsCsv> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let empty = file.metadata().map_err(|e| Error::io(path, e))?.len() == 0;
        let mut csv = MetricsCsv {
            path: path.to_path_buf(),
            file,
        };
        if empty {
            csv.write_line(HEADER)?;
        }
        Ok(csv)
    }

    /// The rows of an existing `metrics.csv` (none if the file does not
    /// exist). A row that does not parse is an error naming the file and line.
    pub fn read_reports(path: &Path) -> Result<Vec<EpochReport>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(path, e)),
        };
        // Rows end with a newline; a last row without one was cut short (a
        // full disk, or a run killed mid-write) and is dropped, as if never
        // written.
        let whole = match text.rfind('\n') {
            Some(end) => &text[..end],
            None => "",
        };
        let mut reports = Vec::new();
        for (n, line) in whole.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            reports.push(parse_row(path, n, line)?);
        }
        Ok(reports)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the epoch's row and flushes it to the operating system.
    pub fn write(&mut self, r: &EpochReport) -> Result<()> {
        self.write_line(&row(r))
    }

    fn write_line(&mut self, line: &str) -> Result<()> {
        let io = |e| Error::io(&self.path, e);
        // One write per row, so a run killed mid-row leaves whole rows.
        crate::util::disk_full_injection::write(&mut self.file, format!("{line}\n").as_bytes())
            .map_err(io)?;
        self.file.flush().map_err(io)
    }
}

/// Line `n` (0-based) of `metrics.csv` as a report; an error names the file and line.
fn parse_row(path: &Path, n: usize, line: &str) -> Result<EpochReport> {
    let bad = || Error::data(path, format!("line {}: not a metrics row: {line:?}", n + 1));
    let fields: Vec<&str> = line.split(',').collect();
    // Rows without the evaluation columns come from runs started
    // before `--eval-every` existed.
    let with_eval = match fields.len() {
        12 => true,
        8 => false,
        _ => return Err(bad()),
    };
    let int = |i: usize| fields[i].trim().parse::<usize>().map_err(|_| bad());
    let float = |i: usize| fields[i].trim().parse::<f64>().map_err(|_| bad());
    let eval = if !with_eval || fields[8].trim().is_empty() {
        None
    } else {
        Some(EvalFigures {
            count: 0,
            fid: float(8)?,
            score: float(9)?,
            covered: int(10)?,
            label_accuracy: if fields[11].trim().is_empty() {
                None
            } else {
                Some(float(11)?)
            },
        })
    };
    Ok(EpochReport {
        epoch: int(0)?,
        epochs: 0,
        steps: int(1)?,
        d_loss: float(2)? as f32,
        g_loss: float(3)? as f32,
        d_real: float(4)? as f32,
        d_fake: float(5)? as f32,
        seconds: float(6)?,
        eval,
    })
}

/// One epoch's row (no newline). Floats are written in Rust's shortest
/// round-trip form, so they parse back to the same values.
pub fn row(r: &EpochReport) -> String {
    let per_sec = r.steps as f64 / r.seconds.max(1e-9);
    let eval = match &r.eval {
        Some(e) => format!(
            "{},{},{},{}",
            e.fid,
            e.score,
            e.covered,
            e.label_accuracy.map_or(String::new(), |a| a.to_string())
        ),
        None => ",,,".to_string(),
    };
    format!(
        "{},{},{},{},{},{},{:.3},{:.2},{eval}",
        r.epoch, r.steps, r.d_loss, r.g_loss, r.d_real, r.d_fake, r.seconds, per_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_header() {
        let r = EpochReport {
            epoch: 3,
            epochs: 10,
            steps: 600,
            d_loss: 0.5,
            g_loss: 2.25,
            d_real: 0.75,
            d_fake: 0.125,
            seconds: 2.0,
            eval: None,
        };
        assert_eq!(row(&r), "3,600,0.5,2.25,0.75,0.125,2.000,300.00,,,,");
        assert_eq!(row(&r).split(',').count(), HEADER.split(',').count());
    }

    #[test]
    fn rows_are_read_back_with_or_without_the_evaluation_columns() {
        let path =
            std::env::temp_dir().join(format!("gan-gpu-metrics-read-{}.csv", std::process::id()));
        let text = format!(
            "{HEADER}\n1,600,0.5,2.25,0.75,0.125,2.000,300.00\n2,600,0.5,2.25,0.75,0.125,2.000,300.00,4.5,8.25,10,0.96875\n3,600,0.5,2.25,0.75,0.125,2.000,300.00,,,,\n"
        );
        std::fs::write(&path, text).unwrap();
        let reports = MetricsCsv::read_reports(&path).unwrap();
        assert_eq!(reports.len(), 3);
        assert_eq!((reports[0].eval, reports[2].eval), (None, None));
        let e = reports[1].eval.unwrap();
        assert_eq!(
            (e.fid, e.score, e.covered, e.label_accuracy),
            (4.5, 8.25, 10, Some(0.96875))
        );
        std::fs::write(&path, format!("{HEADER}\n1,600,0.5\n")).unwrap();
        let err = MetricsCsv::read_reports(&path).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn a_row_cut_short_at_the_end_is_dropped() {
        let path =
            std::env::temp_dir().join(format!("gan-gpu-metrics-torn-{}.csv", std::process::id()));
        let whole = "1,600,0.5,2.25,0.75,0.125,2.000,300.00,,,,";
        // A full disk or kill -9 in the middle of the second row.
        std::fs::write(&path, format!("{HEADER}\n{whole}\n2,600,0.5,2.")).unwrap();
        let reports = MetricsCsv::read_reports(&path).unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].epoch, 1);
        // Cut inside the header: no rows.
        std::fs::write(&path, &HEADER[..10]).unwrap();
        assert!(MetricsCsv::read_reports(&path).unwrap().is_empty());
        // A bad row that is not the last is still an error.
        std::fs::write(&path, format!("{HEADER}\n1,600,0.5\n{whole}\n")).unwrap();
        let err = MetricsCsv::read_reports(&path).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn append_adds_rows_after_the_old_ones() {
        let path = std::env::temp_dir().join(format!("gan-gpu-metrics-{}.csv", std::process::id()));
        let r = |epoch| EpochReport {
            epoch,
            epochs: 2,
            steps: 1,
            d_loss: 1.0,
            g_loss: 1.0,
            d_real: 0.5,
            d_fake: 0.5,
            seconds: 1.0,
            eval: None,
        };
        MetricsCsv::create(&path).unwrap().write(&r(1)).unwrap();
        MetricsCsv::append(&path).unwrap().write(&r(2)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], HEADER);
        assert!(lines[2].starts_with("2,"));
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn a_file_that_cannot_be_created_is_named() {
        let path = std::env::temp_dir().join("gan-gpu-no-such-dir/x/metrics.csv");
        let err = MetricsCsv::create(&path).err().unwrap().to_string();
        assert!(err.contains("metrics.csv"), "{err}");
    }
}
