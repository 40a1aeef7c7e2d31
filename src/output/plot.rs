//! `losses.png`: line charts of a run's per-epoch numbers, drawn by hand on a
//! [`Canvas`]: the discriminator's and generator's losses in one panel, mean
//! D(x) and D(G(z)) in a second, each with axes, "nice" tick marks (1, 2 or 5
//! times a power of ten), tick labels, a grid and a legend.

use std::path::Path;

use super::canvas::{Align, Canvas, Rgb, WHITE};
use crate::error::Result;
use crate::report::EpochReport;

const BLUE: Rgb = [31, 119, 180];
const ORANGE: Rgb = [255, 127, 14];
const GREEN: Rgb = [44, 160, 44];
const RED: Rgb = [214, 39, 40];
const AXIS: Rgb = [40, 40, 40];
const GRID: Rgb = [225, 225, 225];
const TEXT: Rgb = [20, 20, 20];

const WIDTH: u32 = 900;
const PANEL_HEIGHT: u32 = 330;
const LEFT: f32 = 72.0;
const RIGHT: f32 = 24.0;
const TOP: f32 = 36.0;
const BOTTOM: f32 = 52.0;
const FONT: f32 = 14.0;

/// Evenly spaced tick values covering `[lo, hi]`: a step of 1, 2 or 5 times
/// a power of ten giving at most `max_ticks` intervals; the range is widened
/// outward to whole steps.
#[derive(Clone, Debug, PartialEq)]
pub struct Ticks {
    pub lo: f64,
    pub hi: f64,
    pub step: f64,
}

impl Ticks {
    /// Ticks for data between `lo` and `hi` (in either order; an empty or
    /// non-finite range gets a unit range around its value).
    pub fn new(lo: f64, hi: f64, max_ticks: usize) -> Ticks {
        let (mut lo, mut hi) = (lo.min(hi), lo.max(hi));
        if !lo.is_finite() || !hi.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-12 {
            (lo, hi) = (lo - 0.5, hi + 0.5);
        }
        let raw = (hi - lo) / max_ticks.max(1) as f64;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * magnitude)
            .find(|&s| s >= raw * (1.0 - 1e-9))
            .unwrap_or(10.0 * magnitude);
        Ticks {
            lo: (lo / step + 1e-9).floor() * step,
            hi: (hi / step - 1e-9).ceil() * step,
            step,
        }
    }

    /// Like [`new`](Self::new) for whole numbers (epochs): the step is at least 1.
    pub fn integers(lo: f64, hi: f64, max_ticks: usize) -> Ticks {
        let t = Ticks::new(lo, hi, max_ticks);
        if t.step >= 1.0 {
            return t;
        }
        Ticks {
            lo: t.lo.floor(),
            hi: t.hi.ceil().max(t.lo.floor() + 1.0),
            step: 1.0,
        }
    }

    /// The tick values, lo to hi.
    pub fn values(&self) -> Vec<f64> {
        let n = ((self.hi - self.lo) / self.step).round() as usize;
        (0..=n).map(|i| self.lo + i as f64 * self.step).collect()
    }

    /// A tick value as text, with as many decimals as the step needs.
    pub fn label(&self, value: f64) -> String {
        let decimals = (-self.step.log10().floor()).max(0.0) as usize;
        let text = format!("{value:.decimals$}");
        // No "-0" or "-0.0".
        if text
            .trim_start_matches('-')
            .chars()
            .all(|c| c == '0' || c == '.')
        {
            text.trim_start_matches('-').to_string()
        } else {
            text
        }
    }
}

/// One line of a chart: a name for the legend, a colour, (x, y) points
/// (non-finite y values leave a gap).
pub struct Series {
    pub name: String,
    pub color: Rgb,
    pub points: Vec<(f64, f64)>,
}

/// One chart panel.
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
    /// A fixed y range, or None to fit the data (including 0).
    pub y_range: Option<(f64, f64)>,
}

/// Draws `losses.png` from the run's reports: losses, then D(x) and D(G(z)).
pub fn write_losses(path: &Path, reports: &[EpochReport]) -> Result<()> {
    let series = |name: &str, color, f: fn(&EpochReport) -> f32| Series {
        name: name.to_string(),
        color,
        points: reports
            .iter()
            .map(|r| (r.epoch as f64, f64::from(f(r))))
            .collect(),
    };
    let panels = [
        Panel {
            title: "Loss per epoch".into(),
            series: vec![
                series("D loss", BLUE, |r| r.d_loss),
                series("G loss", ORANGE, |r| r.g_loss),
            ],
            y_range: None,
        },
        Panel {
            title: "Mean discriminator output".into(),
            series: vec![
                series("D(x), real", GREEN, |r| r.d_real),
                series("D(G(z)), generated", RED, |r| r.d_fake),
            ],
            y_range: Some((0.0, 1.0)),
        },
    ];
    render(&panels, "epoch").write_png(path)
}

/// Draws the panels one above the other, sharing the x label.
pub fn render(panels: &[Panel], x_label: &str) -> Canvas {
    let height = PANEL_HEIGHT * panels.len().max(1) as u32;
    let mut canvas = Canvas::new(WIDTH, height, WHITE);
    for (i, panel) in panels.iter().enumerate() {
        let top = (i as u32 * PANEL_HEIGHT) as f32;
        draw_panel(&mut canvas, panel, top, x_label);
    }
    canvas
}

/// The x range of all series' points.
fn x_extent(panel: &Panel) -> (f64, f64) {
    let xs = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0));
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    if lo.is_finite() {
        (lo.min(0.0), hi)
    } else {
        (0.0, 1.0)
    }
}

/// The finite y range of all series' points, with 0 included.
fn y_extent(panel: &Panel) -> (f64, f64) {
    let ys = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|y| y.is_finite());
    ys.fold((0.0, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    })
}

fn draw_panel(canvas: &mut Canvas, panel: &Panel, top: f32, x_label: &str) {
    let (x0, x1) = x_extent(panel);
    let xt = Ticks::integers(x0, x1, 10);
    let (y0, y1) = panel.y_range.unwrap_or_else(|| y_extent(panel));
    let yt = Ticks::new(y0, y1, 6);
    let plot_left = LEFT;
    let plot_right = WIDTH as f32 - RIGHT;
    let plot_top = top + TOP;
    let plot_bottom = top + PANEL_HEIGHT as f32 - BOTTOM;
    let sx = |x: f64| plot_left + ((x - xt.lo) / (xt.hi - xt.lo)) as f32 * (plot_right - plot_left);
    let sy =
        |y: f64| plot_bottom - ((y - yt.lo) / (yt.hi - yt.lo)) as f32 * (plot_bottom - plot_top);

    canvas.text(
        (plot_left, top + 8.0),
        &panel.title,
        FONT + 2.0,
        Align::Left,
        TEXT,
    );
    // Grid lines and tick labels.
    for v in yt.values() {
        let y = sy(v).round();
        canvas.fill_rect(
            plot_left as i64,
            y as i64,
            (plot_right - plot_left) as i64,
            1,
            GRID,
        );
        canvas.fill_rect(plot_left as i64 - 5, y as i64, 5, 1, AXIS);
        let label_y = y - Canvas::line_height(FONT) / 2.0;
        canvas.text(
            (plot_left - 8.0, label_y),
            &yt.label(v),
            FONT,
            Align::Right,
            TEXT,
        );
    }
    for v in xt.values() {
        let x = sx(v).round();
        canvas.fill_rect(
            x as i64,
            plot_top as i64,
            1,
            (plot_bottom - plot_top) as i64,
            GRID,
        );
        canvas.fill_rect(x as i64, plot_bottom as i64, 1, 5, AXIS);
        canvas.text(
            (x, plot_bottom + 7.0),
            &xt.label(v),
            FONT,
            Align::Center,
            TEXT,
        );
    }
    canvas.text(
        ((plot_left + plot_right) / 2.0, plot_bottom + 26.0),
        x_label,
        FONT,
        Align::Center,
        TEXT,
    );
    // Axes: left and bottom.
    let (l, t, b) = (plot_left as i64, plot_top as i64, plot_bottom as i64);
    canvas.fill_rect(l, t, 1, b - t + 1, AXIS);
    canvas.fill_rect(l, b, (plot_right - plot_left) as i64 + 1, 1, AXIS);

    for series in &panel.series {
        let points: Vec<Option<(f32, f32)>> = series
            .points
            .iter()
            .map(|&(x, y)| y.is_finite().then(|| (sx(x), sy(y.clamp(yt.lo, yt.hi)))))
            .collect();
        for pair in points.windows(2) {
            if let [Some(a), Some(b)] = pair {
                canvas.line(*a, *b, 2.0, series.color);
            }
        }
        // Dots where there are few points, so a short run still shows them.
        if points.len() <= 40 {
            for p in points.iter().flatten() {
                canvas.dot(*p, 3.0, series.color);
            }
        }
    }
    draw_legend(canvas, &panel.series, plot_right, top + 9.0);
}

/// A one-line legend above the plot, right-aligned at `right`, its text's
/// top at `top`: a coloured line sample, then the series name, per series.
fn draw_legend(canvas: &mut Canvas, series: &[Series], right: f32, top: f32) {
    const SAMPLE: f32 = 24.0;
    const SPACING: f32 = 20.0;
    let entry_w = |s: &Series| SAMPLE + 6.0 + Canvas::text_width(&s.name, FONT);
    let total: f32 = series.iter().map(|s| entry_w(s) + SPACING).sum::<f32>() - SPACING;
    let mut x = right - total;
    let mid = top + Canvas::line_height(FONT) / 2.0;
    for s in series {
        canvas.line((x, mid), (x + SAMPLE, mid), 2.5, s.color);
        canvas.text((x + SAMPLE + 6.0, top), &s.name, FONT, Align::Left, TEXT);
        x += entry_w(s) + SPACING;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice_and_cover_the_range() {
        let t = Ticks::new(0.0, 3.7, 6);
        assert_eq!((t.lo, t.hi, t.step), (0.0, 4.0, 1.0));
        assert_eq!(t.values(), [0.0, 1.0, 2.0, 3.0, 4.0]);
        let t = Ticks::new(0.0, 1.0, 6);
        assert_eq!(t.step, 0.2);
        assert_eq!(t.values().len(), 6);
        assert_eq!(t.label(t.values()[3]), "0.6");
        let t = Ticks::new(0.62, 0.68, 6);
        assert!((t.step - 0.01).abs() < 1e-12, "{t:?}");
        assert!(t.lo <= 0.62 && t.hi >= 0.68);
        assert_eq!(t.label(0.65), "0.65");
        let t = Ticks::new(-130.0, 870.0, 5);
        assert_eq!((t.lo, t.hi, t.step), (-200.0, 1000.0, 200.0));
        assert_eq!(t.label(-200.0), "-200");
    }

    #[test]
    fn degenerate_ranges_still_get_ticks() {
        let t = Ticks::new(2.0, 2.0, 6);
        assert!(t.lo < 2.0 && t.hi > 2.0 && t.step > 0.0);
        let t = Ticks::new(f64::NAN, f64::INFINITY, 6);
        assert_eq!((t.lo, t.hi), (0.0, 1.0));
        assert_eq!(Ticks::new(-1.0, 1.0, 4).label(-1e-17), "0.0");
    }

    #[test]
    fn epoch_ticks_are_whole_numbers() {
        let t = Ticks::integers(0.0, 1.0, 10);
        assert_eq!((t.lo, t.hi, t.step), (0.0, 1.0, 1.0));
        assert_eq!(t.label(1.0), "1");
        let t = Ticks::integers(0.0, 3.0, 10);
        assert_eq!(t.values(), [0.0, 1.0, 2.0, 3.0]);
        let t = Ticks::integers(0.0, 100.0, 10);
        assert_eq!((t.lo, t.hi, t.step), (0.0, 100.0, 10.0));
        let t = Ticks::integers(0.0, 30.0, 10);
        assert_eq!(t.step, 5.0);
        assert_eq!(t.label(-0.0), "0");
    }

    #[test]
    fn a_chart_renders_at_its_size() {
        let reports: Vec<EpochReport> = (1..=3)
            .map(|e| EpochReport {
                epoch: e,
                epochs: 3,
                steps: 10,
                d_loss: 1.0 / e as f32,
                g_loss: e as f32,
                d_real: 0.6,
                d_fake: 0.3,
                seconds: 1.0,
                eval: None,
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("gan-gpu-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("losses.png");
        write_losses(&path, &reports).unwrap();
        let img = image::open(&path).unwrap();
        assert_eq!((img.width(), img.height()), (WIDTH, 2 * PANEL_HEIGHT));
        std::fs::remove_dir_all(dir).ok();
    }
}
