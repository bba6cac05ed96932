//! What several commands print the same way.

use reproml_report::{Report, to_markdown, verdict_lines};

/// Prints the verdicts and the Table-V-style table.
pub fn print_summary(report: &Report) {
    println!("{}", to_markdown(report));
    for line in verdict_lines(report) {
        println!("- {line}");
    }
}
