//! Reading the gateway's `/metrics` text exactly.
//!
//! Why not `contains`: a substring also matches the `# HELP` line, and a
//! value prefix (`} 18` is inside `} 180`). These helpers parse sample
//! lines: the metric name must match exactly, the given labels must all be
//! present with exactly these values, and the value is a number.

/// One parsed sample: metric name, labels (name, value), value.
pub type Sample<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);

/// One sample line: name, labels, value.
pub fn parse_sample(line: &str) -> Option<Sample<'_>> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.trim().parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (series, ""),
    };
    let mut out = Vec::new();
    let mut rest = labels;
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"")?;
        let end = after.find('"')?;
        out.push((k.trim_start_matches(','), &after[..end]));
        rest = &after[end + 1..];
    }
    Some((name, out, value))
}

/// The samples of `name` whose labels include every pair of `labels`.
pub fn samples(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    text.lines()
        .filter_map(parse_sample)
        .filter(|(n, ls, _)| {
            *n == name
                && labels
                    .iter()
                    .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .collect()
}

/// The sum of the matching samples; `None` when no sample matches.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let s = samples(text, name, labels);
    (!s.is_empty()).then(|| s.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP sluice_ttfb_seconds Time to first byte.\n\
        # TYPE sluice_tokens counter\n\
        sluice_tokens_total{route=\"r\",direction=\"output\"} 180\n\
        sluice_tokens_total{route=\"r\",direction=\"input\"} 18\n\
        sluice_ttfb_seconds_count{route=\"r\"} 2\n";

    #[test]
    fn exact_names_labels_and_values() {
        assert_eq!(
            metric(TEXT, "sluice_tokens_total", &[("direction", "output")]),
            Some(180.0)
        );
        assert_eq!(
            metric(TEXT, "sluice_tokens_total", &[("direction", "input")]),
            Some(18.0)
        );
        assert_eq!(metric(TEXT, "sluice_tokens_total", &[]), Some(198.0));
        // The HELP line is not a sample.
        assert_eq!(metric(TEXT, "sluice_ttfb_seconds", &[]), None);
        assert_eq!(
            metric(TEXT, "sluice_ttfb_seconds_count", &[("route", "r")]),
            Some(2.0)
        );
        assert_eq!(
            metric(TEXT, "sluice_tokens_total", &[("direction", "out")]),
            None
        );
    }
}
