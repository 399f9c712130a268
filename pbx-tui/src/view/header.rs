//! The header line (the switch at a glance) and the banner shown when the daemon is
//! down or not responding.

use super::theme::Theme;
use crate::clock;
use crate::model::{Link, Model};
use coventry_shared::event::RouteState;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

/// The banner text, when there is something to shout about.
pub fn banner(model: &Model) -> Option<String> {
    match &model.link {
        Link::Down { reason, since_ms } => {
            let last = if model.site.is_some() {
                "Showing the last known state. "
            } else {
                ""
            };
            Some(format!(
                " COVENTRYD IS DOWN (since {}): {reason}. {last}Retrying.",
                clock::time_of_day(*since_ms, model.utc_offset_s)
            ))
        }
        Link::Stale { heartbeat_ms } => Some(format!(
            " COVENTRYD NOT RESPONDING: heartbeat {} old, the screen may be out of date",
            clock::span(model.now_ms.saturating_sub(*heartbeat_ms))
        )),
        Link::Up { .. } | Link::Connecting => None,
    }
}

/// Draw the header into `area` (one row): everything when it fits, else
/// shorter words and then fewer facts, never the bound address cut.
pub fn draw(model: &Model, theme: Theme, frame: &mut Frame, area: Rect) {
    let room = usize::from(area.width.saturating_sub(CLOCK_WIDTH));
    let spans = (0..=MOST_COMPACT)
        .map(|level| spans(model, theme, level))
        .find(|s| s.iter().map(Span::width).sum::<usize>() <= room)
        .unwrap_or_else(|| spans(model, theme, MOST_COMPACT));
    let clock = clock::time_of_day(model.now_ms, model.utc_offset_s);
    let [left, right] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Length(CLOCK_WIDTH)]).areas(area);
    frame.render_widget(Paragraph::new(Line::from(spans)), left);
    frame.render_widget(Paragraph::new(Line::from(clock)).right_aligned(), right);
}

/// Columns of the clock at the right end.
const CLOCK_WIDTH: u16 = 9;
/// The most compact header: 1 shortens words (a failing route without its
/// name, `kdrops`), 2 also leaves out the pid, 3 also the uptime, 4 also
/// tightens the separators.
const MOST_COMPACT: u8 = 4;

/// The header's spans at compactness `level` (0: everything in full).
fn spans(model: &Model, theme: Theme, level: u8) -> Vec<Span<'static>> {
    let sep = || {
        let dot = if level >= 4 { "\u{b7}" } else { " \u{b7} " };
        Span::styled(dot, theme.label())
    };
    let mut spans = vec![Span::styled("Coventry ", theme.title())];
    spans.push(match &model.link {
        Link::Up { .. } => Span::styled("\u{25cf} up", theme.health(true)),
        Link::Stale { .. } => Span::styled("\u{25cf} STALE", theme.health(false)),
        Link::Down { .. } => Span::styled("\u{25cf} DOWN", theme.health(false)),
        Link::Connecting => Span::styled("\u{25cb} connecting", theme.label()),
    });
    if model.readonly {
        spans.push(sep());
        spans.push(Span::styled("READ-ONLY", theme.title()));
    }
    if let Some(site) = &model.site {
        let d = &site.daemon;
        if level < 3 && matches!(model.link, Link::Up { .. } | Link::Stale { .. }) {
            spans.push(Span::raw(format!(
                " {}",
                clock::span(model.now_ms.saturating_sub(d.start_ms))
            )));
        }
        let configured = site.configured().count();
        let registered = site.exts.iter().filter(|e| e.registered).count();
        for part in [
            format!("reg {registered}/{configured}"),
            format!("calls {}", site.live_calls().count()),
        ] {
            spans.push(sep());
            spans.push(Span::raw(part));
        }
        if site.runstate != coventry_shared::runstate::DEFAULT_RUNSTATE {
            spans.push(sep());
            spans.push(Span::styled(site.runstate.clone(), theme.title()));
        }
        if !site.upstream.is_empty() {
            // A site of a building of switches calls its default route `building`.
            let in_building = |name: &str| name.split('+').any(|n| n == "building");
            let whole = if site.upstream.iter().any(|u| in_building(&u.name)) {
                "building"
            } else {
                "upstream"
            };
            spans.push(sep());
            spans.push(
                match site
                    .upstream
                    .iter()
                    .find(|u| u.state != RouteState::Connected)
                {
                    None => Span::styled(format!("{whole} ok"), theme.health(true)),
                    Some(u) => {
                        // Short words: the header has 80 columns; the log says more.
                        let word = match u.state {
                            RouteState::Connecting => "connecting",
                            RouteState::Reconnecting => "retrying",
                            RouteState::Connected | RouteState::Down => "DOWN",
                        };
                        let what = if in_building(&u.name) {
                            "building".to_string()
                        } else if level >= 1 {
                            "upstream".to_string()
                        } else {
                            format!("upstream {}", u.name)
                        };
                        Span::styled(format!("{what} {word}"), theme.health(false))
                    }
                },
            );
        }
        // A flood was held back (shed), or the switch fell behind the wire (the
        // kernel dropped datagrams for it): worth a glance, shown only then.
        let c = &site.counters;
        for (word, n, bad) in [
            ("shed", c.shed, false),
            (
                if level >= 1 { "kdrops" } else { "kernel drops" },
                c.kernel_drops,
                true,
            ),
            (
                if level >= 1 { "tdrops" } else { "tcp drops" },
                c.tcp_dropped,
                true,
            ),
        ] {
            if n > 0 {
                spans.push(sep());
                let text = format!("{word} {}", short_count(n));
                spans.push(if bad {
                    Span::styled(text, theme.health(false))
                } else {
                    Span::raw(text)
                });
            }
        }
        if level < 2 {
            spans.push(sep());
            spans.push(Span::raw(format!("pid {}", d.pid)));
        }
        spans.push(sep());
        spans.push(Span::raw(d.bound.clone()));
    }
    spans
}

/// A count in at most four characters: `950`, `13k`, `2.1M`.
fn short_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{}k", n / 1000),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::short_count;

    #[test]
    fn counts_stay_short() {
        assert_eq!(short_count(950), "950");
        assert_eq!(short_count(13_051), "13k");
        assert_eq!(short_count(2_100_000), "2.1M");
    }
}
