//! JUnit XML, in the shape of the common `junit-10.xsd` CI systems read (Jenkins, GitLab…):
//! `<testsuites>` holding one `<testsuite>` per engine (its architecture and facts as
//! `<properties>`), one `<testcase classname="group" name="group/name[variant]">` per result.
//!
//! Failures carry `<failure message="first line" type="fail">detail</failure>`; engine errors,
//! crashes, timeouts and expected failures that passed carry `<error>` with `type="engine"`,
//! `"crash"`, `"timeout"` or `"xpass"`; skips carry `<skipped message="reason"/>`;
//! expected failures are reported as skipped with `type="xfail"` (as pytest does), the failure
//! detail in the test case's `<system-out>`. Case files that failed to load form one more suite,
//! `case-files`, of errors. Everything is escaped with [`super::xml_escape`].

use super::{xml_attr, xml_escape, Record, Run, Status};
use std::fmt::Write;

/// Per-suite counts in JUnit's terms.
#[derive(Default)]
struct Tally {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
    time: f64,
}

impl Tally {
    fn add(&mut self, r: &Record) {
        self.tests += 1;
        self.time += r.time.unwrap_or(0.0);
        match r.verdict {
            Status::Pass => {}
            Status::Fail => self.failures += 1,
            Status::Error | Status::Crash | Status::Timeout | Status::Xpass => self.errors += 1,
            Status::Skip | Status::Xfail => self.skipped += 1,
        }
    }

    fn attrs(&self) -> String {
        format!(
            "tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.6}\"",
            self.tests, self.failures, self.errors, self.skipped, self.time
        )
    }
}

/// Renders a run as a JUnit XML document.
pub fn render(run: &Run) -> String {
    let mut engines: Vec<&str> = run.engines.iter().map(|e| e.name.as_str()).collect();
    for r in &run.results {
        if !engines.contains(&r.engine.as_str()) {
            engines.push(&r.engine);
        }
    }
    let timestamp = timestamp_now();
    let hostname = hostname();
    let mut total = Tally::default();
    let mut suites = String::new();
    for (id, engine) in engines.iter().enumerate() {
        let mut tally = Tally::default();
        let mut cases = String::new();
        for r in run.results.iter().filter(|r| r.engine == *engine) {
            tally.add(r);
            total.add(r);
            testcase(&mut cases, r);
        }
        let mut props = format!(
            "      <property name=\"arch\" value=\"{}\"/>\n",
            xml_attr(run.arch_of(engine))
        );
        if let Some(info) = run.engines.iter().find(|e| e.name == *engine) {
            for (k, v) in &info.facts {
                let _ = writeln!(
                    props,
                    "      <property name=\"{}\" value=\"{}\"/>",
                    xml_attr(k),
                    xml_attr(v)
                );
            }
        }
        let _ = write!(
            suites,
            "  <testsuite name=\"{}\" {} timestamp=\"{timestamp}\" hostname=\"{}\" id=\"{id}\" \
             package=\"bpfconf\">\n    <properties>\n{props}    </properties>\n{cases}    \
             <system-out/>\n    <system-err/>\n  </testsuite>\n",
            xml_attr(engine),
            tally.attrs(),
            xml_attr(&hostname),
        );
    }
    if !run.load_errors.is_empty() {
        let mut cases = String::new();
        for e in &run.load_errors {
            let first = e.lines().next().unwrap_or("");
            let _ = write!(
                cases,
                "    <testcase classname=\"case-files\" name=\"{}\" time=\"0\">\n      \
                 <error message=\"{}\" type=\"load\">{}</error>\n    </testcase>\n",
                xml_attr(first),
                xml_attr(first),
                xml_escape(e)
            );
        }
        let n = run.load_errors.len();
        total.tests += n;
        total.errors += n;
        let _ = write!(
            suites,
            "  <testsuite name=\"case-files\" tests=\"{n}\" failures=\"0\" errors=\"{n}\" \
             skipped=\"0\" time=\"0\" timestamp=\"{timestamp}\" hostname=\"{}\" id=\"{}\" \
             package=\"bpfconf\">\n    <properties/>\n{cases}    <system-out/>\n    \
             <system-err/>\n  </testsuite>\n",
            xml_attr(&hostname),
            engines.len()
        );
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"bpfconf\" {}>\n{suites}</testsuites>\n",
        total.attrs()
    )
}

fn testcase(out: &mut String, r: &Record) {
    let _ = write!(
        out,
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.6}\"",
        xml_attr(r.group()),
        xml_attr(&format!("{}[{}]", r.case, r.variant)),
        r.time.unwrap_or(0.0)
    );
    let detail = r.detail.as_deref().unwrap_or("");
    let why = r.expect_fail.as_deref().unwrap_or("");
    let body = match r.verdict {
        Status::Pass => None,
        Status::Fail => Some(format!(
            "<failure message=\"{}\" type=\"fail\">{}</failure>",
            xml_attr(r.summary()),
            xml_escape(detail)
        )),
        Status::Error | Status::Crash | Status::Timeout | Status::Xpass => Some(format!(
            "<error message=\"{}\" type=\"{}\">{}</error>",
            xml_attr(r.summary()),
            match r.verdict {
                Status::Error => "engine",
                other => other.name(),
            },
            xml_escape(detail)
        )),
        Status::Skip => Some(format!("<skipped message=\"{}\"/>", xml_attr(detail))),
        Status::Xfail => Some(format!(
            "<skipped message=\"{}\" type=\"xfail\"/>\n      <system-out>{}</system-out>",
            xml_attr(&format!("expected failure: {why}")),
            xml_escape(detail)
        )),
    };
    match body {
        None => out.push_str("/>\n"),
        Some(b) => {
            let _ = write!(out, ">\n      {b}\n    </testcase>\n");
        }
    }
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS` (the schema's timestamp, without zone).
fn timestamp_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }
}
