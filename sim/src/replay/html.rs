//! A replay's HTML report: one self-contained file (no scripts, fonts or styles from
//! elsewhere) with a summary table, per configuration a utilisation-over-time chart and a
//! wait-time distribution drawn by plotters as inline SVG, and the logs that were skipped.

use std::fmt::Write as _;

use plotters::prelude::*;

use super::report::{ConfigurationReport, ReplayReport, UtilisationPoint};

const WIDTH: u32 = 760;
const HEIGHT: u32 = 280;
/// Bars of the wait-time distribution.
const WAIT_BINS: usize = 24;

/// `&`, `<`, `>`, `"` and `'` escaped for HTML text and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"))
}

fn percent(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

/// The allocated cpu and memory share over time, as an SVG document.
fn utilisation_chart(c: &ConfigurationReport) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let end = c
            .utilisation
            .last()
            .map_or(1.0, |p| p.at)
            .max(c.summary.makespan_seconds)
            .max(1.0);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{}: share of the cluster allocated", c.name),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..end, 0f64..1.0)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds from the first submission")
            .y_desc("allocated")
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .draw()
            .map_err(|e| e.to_string())?;
        // Each level holds until the next point: drawn as steps.
        let steps = |level: fn(&UtilisationPoint) -> f64| {
            let mut out = Vec::with_capacity(c.utilisation.len() * 2);
            for (i, p) in c.utilisation.iter().enumerate() {
                out.push((p.at, level(p)));
                let until = c.utilisation.get(i + 1).map_or(end, |n| n.at);
                out.push((until, level(p)));
            }
            out
        };
        let cpu = RGBColor(31, 119, 180);
        let memory = RGBColor(214, 39, 40);
        chart
            .draw_series(LineSeries::new(steps(|p| p.cpu), cpu.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("cpu")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], cpu.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(steps(|p| p.memory), memory.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("memory")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], memory.stroke_width(2))
            });
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// How many started applications waited how long, as an SVG document.
fn wait_chart(c: &ConfigurationReport) -> Result<String, String> {
    let waits: Vec<f64> = c.apps.iter().filter_map(|a| a.wait_seconds).collect();
    let max = waits.iter().copied().fold(0.0, f64::max);
    let width = (max / WAIT_BINS as f64).max(1.0);
    let mut counts = [0u32; WAIT_BINS];
    for w in &waits {
        let bin = ((w / width) as usize).min(WAIT_BINS - 1);
        counts[bin] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(0).max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "{}: wait until driver and minimum executors run ({} of {} started)",
                    c.name, c.summary.started, c.summary.applications
                ),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..width * WAIT_BINS as f64, 0u32..top + top / 10 + 1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds waited")
            .y_desc("applications")
            .draw()
            .map_err(|e| e.to_string())?;
        let bar = RGBColor(44, 160, 44);
        chart
            .draw_series(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n > 0)
                    .map(|(i, n)| {
                        let lo = i as f64 * width;
                        Rectangle::new([(lo, 0), (lo + width * 0.9, *n)], bar.filled())
                    }),
            )
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1100px}\
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;\
text-align:right}th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}\
.charts{display:flex;flex-wrap:wrap;gap:1em}code{background:#f3f3f3;padding:0 3px}\
td.text{text-align:left}";

/// The whole page.
pub fn render_html(r: &ReplayReport) -> Result<String, String> {
    let mut h = String::new();
    let w = &mut h;
    let _ = write!(
        w,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>sparkgang replay of {src}</title><style>{STYLE}</style></head><body>\n\
         <h1>What-if replay</h1>\n<p>{apps} applications from <code>{src}</code> on {nodes} nodes, \
         replayed on the virtual clock (horizon {horizon:.0} s). Times are seconds from the first \
         submission.</p>\n",
        src = escape(&r.eventlogs),
        apps = r.applications,
        nodes = r.nodes,
        horizon = r.horizon_seconds,
    );
    let _ = write!(
        w,
        "<h2>Summary</h2>\n<table><tr><th>configuration</th><th>started</th><th>completed</th>\
         <th>never started</th><th>wait p50</th><th>wait p90</th><th>wait p99</th><th>wait max</th>\
         <th>makespan</th><th>mean cpu</th><th>mean memory</th></tr>\n"
    );
    for c in &r.configurations {
        let s = &c.summary;
        let _ = writeln!(
            w,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.name),
            s.started,
            s.completed,
            s.never_started,
            fmt_opt(s.wait_seconds.p50),
            fmt_opt(s.wait_seconds.p90),
            fmt_opt(s.wait_seconds.p99),
            fmt_opt(s.wait_seconds.max),
            s.makespan_seconds,
            percent(s.mean_cpu_utilisation),
            percent(s.mean_memory_utilisation),
        );
    }
    let _ = writeln!(w, "</table>");
    for c in &r.configurations {
        let _ = writeln!(
            w,
            "<h2>{}</h2>\n<div class=\"charts\">{}{}</div>",
            escape(&c.name),
            utilisation_chart(c)?,
            wait_chart(c)?
        );
        if !c.never_started.is_empty() {
            let _ = writeln!(
                w,
                "<details><summary>{} never started</summary><table><tr><th>application</th>\
                 <th>last reason</th></tr>",
                c.never_started.len()
            );
            for a in c.apps.iter().filter(|a| a.started_at.is_none()) {
                let _ = writeln!(
                    w,
                    "<tr><td>{}</td><td class=\"text\">{}</td></tr>",
                    escape(&a.app_id),
                    escape(a.last_pending_reason.as_deref().unwrap_or("–"))
                );
            }
            let _ = writeln!(w, "</table></details>");
        }
    }
    let _ = writeln!(
        w,
        "<h2>Skipped logs</h2>\n<p>{} entries of the directory gave no application.</p>",
        r.skipped.len()
    );
    if !r.skipped.is_empty() {
        let _ = writeln!(w, "<table><tr><th>log</th><th>reason</th></tr>");
        for s in &r.skipped {
            let _ = writeln!(
                w,
                "<tr><td>{}</td><td class=\"text\">{}</td></tr>",
                escape(&s.source.display().to_string()),
                escape(&s.reason)
            );
        }
        let _ = writeln!(w, "</table>");
    }
    if !r.assumed.is_empty() {
        let _ = writeln!(
            w,
            "<h2>Assumed</h2>\n<p>What {} logs lacked, and what the replay assumed instead.</p>\
             <table><tr><th>application</th><th>assumed</th></tr>",
            r.assumed.len()
        );
        for (app, notes) in &r.assumed {
            let _ = writeln!(
                w,
                "<tr><td>{}</td><td class=\"text\">{}</td></tr>",
                escape(app),
                notes
                    .iter()
                    .map(|n| escape(n))
                    .collect::<Vec<_>>()
                    .join("<br>")
            );
        }
        let _ = writeln!(w, "</table>");
    }
    let _ = writeln!(w, "</body></html>");
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">Tom & Jerry's</a>"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;"
        );
    }
}
