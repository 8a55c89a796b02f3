//! The table every run prints: one row per figure, with its goal beside it when it has
//! one, and whether the figure meets it. Goals are printed, never asserted: a missed goal
//! is a finding, not a failure of the run.

use std::fmt::Write as _;

/// What a figure is counted in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    Milliseconds,
    PerSecond,
    Percent,
    MebiBytes,
    MebiBytesPerSecond,
    /// How many times the other one.
    Times,
    Count,
    /// A mean count, which whole numbers would round away (2.2 flushes a job).
    MeanCount,
}

impl Unit {
    fn format(self, value: f64) -> String {
        if value.is_nan() {
            return "n/a".to_owned();
        }
        match self {
            Unit::Milliseconds if value.abs() < 10.0 => format!("{value:.2} ms"),
            Unit::Milliseconds => format!("{value:.1} ms"),
            Unit::PerSecond => format!("{}/s", thousands(value)),
            Unit::Percent => format!("{value:.2}%"),
            Unit::MebiBytes => format!("{value:.1} MiB"),
            Unit::MebiBytesPerSecond => format!("{value:.0} MiB/s"),
            Unit::Times => format!("{value:.2}x"),
            Unit::Count => thousands(value),
            Unit::MeanCount => format!("{value:.2}"),
        }
    }
}

/// `12345.6` as `12,346`.
fn thousands(value: f64) -> String {
    let rounded = value.round() as i64;
    let digits = rounded.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if rounded < 0 {
        grouped.insert(0, '-');
    }
    grouped
}

/// A figure's goal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    Below(f64),
    AtLeast(f64),
}

impl Goal {
    fn met_by(self, value: f64) -> bool {
        match self {
            Goal::Below(limit) => value < limit,
            Goal::AtLeast(floor) => value >= floor,
        }
    }

    fn format(self, unit: Unit) -> String {
        match self {
            Goal::Below(limit) => format!("< {}", unit.format(limit)),
            Goal::AtLeast(floor) => format!(">= {}", unit.format(floor)),
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: String,
    pub measure: String,
    pub value: String,
    pub goal: String,
    /// `Some(true)` meets its goal, `Some(false)` misses it, `None` has none.
    pub meets: Option<bool>,
}

/// Everything a run measured, in the order it was measured.
#[derive(Debug, Default)]
pub struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
    scenarios_run: Vec<String>,
}

impl Report {
    /// A figure, with its goal when it has one.
    pub fn figure(
        &mut self,
        scenario: &str,
        measure: &str,
        value: f64,
        unit: Unit,
        goal: Option<Goal>,
    ) {
        self.rows.push(Row {
            scenario: scenario.to_owned(),
            measure: measure.to_owned(),
            value: unit.format(value),
            goal: goal.map(|goal| goal.format(unit)).unwrap_or_default(),
            meets: goal.map(|goal| !value.is_nan() && goal.met_by(value)),
        });
    }

    /// A row whose value is words: a scenario that could not run, or why.
    pub fn text(&mut self, scenario: &str, measure: &str, value: &str) {
        self.rows.push(Row {
            scenario: scenario.to_owned(),
            measure: measure.to_owned(),
            value: value.to_owned(),
            goal: String::new(),
            meets: None,
        });
    }

    /// A sentence printed under the table.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Records that a scenario ran to its end.
    pub fn finished(&mut self, scenario: &str) {
        self.scenarios_run.push(scenario.to_owned());
    }

    pub fn scenarios_run(&self) -> &[String] {
        &self.scenarios_run
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Goals missed, as `scenario: measure`.
    pub fn misses(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|row| row.meets == Some(false))
            .map(|row| format!("{}: {}", row.scenario, row.measure))
            .collect()
    }

    /// The table in aligned plain text, for a terminal.
    pub fn to_text(&self) -> String {
        let header = ["scenario", "measure", "value", "goal", ""];
        let lines: Vec<[String; 5]> = self.rows.iter().map(cells).collect();
        let mut widths = header.map(str::len);
        for line in &lines {
            for (column, (width, cell)) in widths.iter_mut().zip(line).enumerate() {
                // A value in words (why something did not run) may stick out.
                if column == 2
                    && !cell.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == 'n')
                {
                    continue;
                }
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut push_line = |cells: &[String]| {
            let mut line = String::new();
            for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
                let pad = width.saturating_sub(cell.chars().count());
                if index == 2 && pad == 0 && cell.chars().count() > width {
                    let _ = write!(line, "{cell}  ");
                } else if index == 2 {
                    // Values read best right-aligned.
                    let _ = write!(line, "{}{cell}  ", " ".repeat(pad));
                } else {
                    let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        };
        push_line(&header.map(str::to_owned));
        push_line(&widths.map(|width| "-".repeat(width)));
        for line in &lines {
            push_line(line);
        }
        for note in &self.notes {
            let _ = writeln!(out, "* {note}");
        }
        out
    }

    /// The table in Markdown, for docs/benchmarks.md.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from(
            "| scenario | measure | value | goal | |\n| --- | --- | ---: | --- | --- |\n",
        );
        for row in &self.rows {
            let [scenario, measure, value, goal, verdict] = cells(row);
            let _ = writeln!(
                out,
                "| {scenario} | {measure} | {value} | {goal} | {verdict} |"
            );
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }
}

fn cells(row: &Row) -> [String; 5] {
    let verdict = match row.meets {
        Some(true) => "meets",
        Some(false) => "MISSES",
        None => "",
    };
    [
        row.scenario.clone(),
        row.measure.clone(),
        row.value.clone(),
        row.goal.clone(),
        verdict.to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_print_with_goals_and_verdicts() {
        let mut report = Report::default();
        report.figure(
            "latency",
            "added p50",
            1.234,
            Unit::Milliseconds,
            Some(Goal::Below(2.0)),
        );
        report.figure(
            "throughput",
            "accepted",
            1500.0,
            Unit::PerSecond,
            Some(Goal::AtLeast(2000.0)),
        );
        report.figure("fan-out", "streams", 1000.0, Unit::Count, None);
        report.text("real", "ComfyUI", "not installed");
        report.note("a note");

        let text = report.to_text();
        assert!(text.contains("1.23 ms"), "{text}");
        assert!(text.contains("< 2.00 ms"), "{text}");
        assert!(text.contains("1,500/s"), "{text}");
        assert!(text.contains(">= 2,000/s"), "{text}");
        assert!(text.contains("MISSES"), "{text}");
        assert!(text.contains("* a note"), "{text}");
        assert_eq!(report.misses(), ["throughput: accepted"]);

        let markdown = report.to_markdown();
        assert!(
            markdown.contains("| latency | added p50 | 1.23 ms | < 2.00 ms | meets |"),
            "{markdown}"
        );
    }

    #[test]
    fn a_missing_figure_never_meets_its_goal() {
        let mut report = Report::default();
        report.figure("x", "y", f64::NAN, Unit::Percent, Some(Goal::AtLeast(99.0)));
        assert_eq!(report.rows()[0].value, "n/a");
        assert_eq!(report.rows()[0].meets, Some(false));
    }
}
