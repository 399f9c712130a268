//! The switch features: where a call to a number goes (speed dials, forwards, DND,
//! busy, coverage, groups), the settings commands (FIFO, keypad codes, messages to
//! `system`), expiries, and `why`.

use super::refusal::Refusal;
use super::upstream::RouteStatus;
use super::Switch;
use crate::config::{speed_code_clash, FeatureUse, RouteKind};
use crate::switch::settings::{ExtSettings, Forward, MAX_HOPS};
use coventry_shared::control::ForwardKind;
use coventry_shared::dialplan::Target;
use coventry_shared::event::{CallOutcome, Event};
use coventry_shared::record::{Hop, HopReason};
use coventry_shared::runstate::{RunState, DEFAULT_RUNSTATE};

/// Where a call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Ring these extensions now (the first is the one called, after forwards),
    /// these later, and forward there when nobody answers.
    Ring {
        /// The extension the call is for (after forwards).
        primary: u16,
        /// Everyone who rings at once (primary, coverage, group members).
        now: Vec<u16>,
        /// Delayed coverage.
        later: Vec<u16>,
        /// Rings before `later` join.
        delay: u8,
        /// Forward-on-no-answer target of the primary.
        noanswer: Option<String>,
        /// The forwards followed to get here.
        hops: Vec<Hop>,
        /// Why, step by step (for `why` and the log).
        trail: Vec<String>,
    },
    /// Send it upstream on route `kind` (emergency or default), as `number`.
    Upstream {
        /// Which route.
        kind: RouteKind,
        /// The number to call there.
        number: String,
        /// The forwards followed to get here.
        hops: Vec<Hop>,
        /// Why.
        trail: Vec<String>,
    },
    /// The call fails with this status.
    Fail {
        /// SIP status.
        code: u16,
        /// Reason phrase.
        reason: &'static str,
        /// Call outcome.
        outcome: CallOutcome,
        /// Why.
        trail: Vec<String>,
    },
}

impl Resolution {
    /// Why, step by step.
    pub fn trail(&self) -> &[String] {
        match self {
            Resolution::Ring { trail, .. }
            | Resolution::Upstream { trail, .. }
            | Resolution::Fail { trail, .. } => trail,
        }
    }
}

/// Who is calling, as routing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Caller {
    /// An extension (it never rings itself through coverage or a group).
    Extension(u16),
    /// The upstream peer: local numbers only, no speed dials.
    Upstream,
    /// Nobody (`why`, or a caller outside the plan).
    Nobody,
}

impl Caller {
    /// The caller an extension number (or none) stands for.
    pub(super) fn of(ext: Option<u16>) -> Caller {
        ext.map_or(Caller::Nobody, Caller::Extension)
    }
}

/// A call's way through forwards so far: the number it stands at, what the
/// switch followed (for `why` and the log) and the forwards (for the record).
struct Walk {
    number: String,
    trail: Vec<String>,
    hops: Vec<Hop>,
}

impl Walk {
    /// Follow extension `from`'s forward to `to`.
    fn forward(&mut self, from: u16, to: String, why: HopReason) -> Step {
        self.hops.push(Hop {
            from,
            to: to.clone(),
            why,
        });
        self.number = to;
        Step::Next
    }

    /// The call fails with `(code, reason, outcome)`; `why` ends the trail.
    fn fail(
        &mut self,
        (code, reason, outcome): (u16, &'static str, CallOutcome),
        why: String,
    ) -> Resolution {
        self.trail.push(why);
        Resolution::Fail {
            code,
            reason,
            outcome,
            trail: std::mem::take(&mut self.trail),
        }
    }

    /// The call goes out on route `kind` to `number`.
    fn upstream(&mut self, kind: RouteKind, number: String) -> Resolution {
        Resolution::Upstream {
            kind,
            number,
            hops: std::mem::take(&mut self.hops),
            trail: std::mem::take(&mut self.trail),
        }
    }
}

/// One step of a walk: go on from the new number, or the answer.
enum Step {
    Next,
    Done(Resolution),
}

impl Switch {
    /// Whether extension `n` is in a call: it called and the call is not over,
    /// it answered one, or it is a party of a click-to-dial call. The busy lamp
    /// shows this.
    pub(super) fn in_call(&self, n: u16) -> bool {
        self.calls
            .live()
            .any(|c| !c.ended() && (c.caller.is(n) || (c.callee.is(n) && c.answer_ms.is_some())))
            || self.in_dial(n)
    }

    /// The busy rule, the one every feature uses (forward on busy, coverage,
    /// groups, `why`): an extension in a call is busy for a new call, unless its
    /// line has call waiting (`call_waiting = yes`: the new call rings, and the
    /// phone decides).
    pub(super) fn is_busy(&self, n: u16) -> bool {
        let waiting = self.config.lines.get(&n).is_some_and(|l| l.call_waiting);
        !waiting && self.in_call(n)
    }

    /// The run state in force and what it changes (none for a state without a
    /// section, such as the default `day`).
    pub fn runstate(&self) -> (&str, Option<&RunState>) {
        (&self.runstate, self.config.runstates.get(&self.runstate))
    }

    /// The settings of `n` in force: the operator's, with what the run state in
    /// force says for `n` on top.
    pub fn ext_settings(&self, n: u16) -> ExtSettings {
        let mut s = self.settings.get(n);
        let Some(state) = self.runstate().1 else {
            return s;
        };
        for ((e, kind), target) in &state.forwards {
            if *e != n {
                continue;
            }
            let f = target.as_ref().map(|t| Forward {
                target: t.clone(),
                until_ms: None,
            });
            match kind {
                ForwardKind::Always => s.always = f,
                ForwardKind::Busy => s.busy = f,
                ForwardKind::NoAnswer => s.noanswer = f,
            }
        }
        if let Some(on) = state.dnd.get(&n) {
            s.dnd = *on;
            s.dnd_until_ms = None;
        }
        s
    }

    /// The coverage of `n` in force (the run state's, else the configuration's).
    pub(super) fn coverage_of(&self, n: u16) -> Vec<u16> {
        self.runstate()
            .1
            .and_then(|s| s.coverage.get(&n).cloned())
            .or_else(|| self.config.lines.get(&n).map(|l| l.coverage.clone()))
            .unwrap_or_default()
    }

    /// The members of group `g` in force (the run state's, else the
    /// configuration's).
    pub(super) fn members_of(&self, g: u16) -> Vec<u16> {
        self.runstate()
            .1
            .and_then(|s| s.groups.get(&g).cloned())
            .or_else(|| self.config.groups.get(&g).cloned())
            .unwrap_or_default()
    }

    /// `runstate [NAME]`: say which run state is in force, or put NAME in force
    /// (a name with a `[runstate NAME]` section, or the default `day`).
    pub(super) fn set_runstate(&mut self, name: Option<&str>) -> Result<String, Refusal> {
        let Some(name) = name else {
            return Ok(self.runstate.clone());
        };
        if name != DEFAULT_RUNSTATE && !self.config.runstates.contains_key(name) {
            let known = std::iter::once(DEFAULT_RUNSTATE)
                .chain(self.config.runstates.keys().map(String::as_str))
                .map(str::to_string)
                .collect();
            return Err(Refusal::NoRunState {
                name: name.to_string(),
                known,
            });
        }
        let before: Vec<u16> = self.runstate_numbers();
        self.runstate = name.to_string();
        let mut touched = before;
        touched.extend(self.runstate_numbers());
        self.out.settings.extend(touched);
        self.out.runstate = Some(self.runstate.clone());
        let text = format!("run state {name}");
        log::info!("{text}");
        self.out.events.push(Event::Notice { text: text.clone() });
        Ok(text)
    }

    /// The extensions the run state in force changes.
    fn runstate_numbers(&self) -> Vec<u16> {
        self.runstate()
            .1
            .map(|s| s.numbers().collect())
            .unwrap_or_default()
    }

    /// Whether extension `e` may ring for a call from `caller` as a group member
    /// or coverage: another extension, registered, not on do not disturb, not busy.
    fn is_free(&self, e: u16, caller: Caller) -> bool {
        caller != Caller::Extension(e)
            && !self.registrar.contacts(e).is_empty()
            && !self.ext_settings(e).dnd
            && !self.is_busy(e)
    }

    /// The target of speed dial `code`, if it is one.
    pub(super) fn speed_dial(&self, code: &str) -> Option<String> {
        match self.settings.speed.get(code) {
            Some(t) => t.clone(),
            None => self.config.speed.get(code).cloned(),
        }
    }

    /// Where a call from `caller` to `dialled` goes now.
    pub(super) fn resolve(&self, dialled: &str, caller: Caller) -> Resolution {
        let mut walk = Walk {
            number: dialled.to_string(),
            trail: Vec::new(),
            hops: Vec::new(),
        };
        if caller != Caller::Upstream {
            if let Some(t) = self.speed_dial(&walk.number) {
                walk.trail
                    .push(format!("speed dial {} is {t}", walk.number));
                walk.number = t;
            }
        }
        for hop in 0..=MAX_HOPS {
            // The upstream peer may reach local numbers only (the switch is no
            // transit exchange): only a local forward sends its call back out.
            let outward = !(caller == Caller::Upstream && hop == 0);
            let step = match self.emergency_step(&mut walk, outward) {
                Some(step) => step,
                None => self.number_step(&mut walk, caller, outward),
            };
            match step {
                Step::Next => continue,
                Step::Done(r) => return r,
            }
        }
        walk.fail(
            (482, "Loop Detected (forward chain)", CallOutcome::Failed),
            format!("more than {MAX_HOPS} forwards"),
        )
    }

    /// An emergency number (when the call may go out): the emergency route, or
    /// `emergency_local` when no emergency route is up. `None`: not one.
    fn emergency_step(&self, walk: &mut Walk, outward: bool) -> Option<Step> {
        let number = walk.number.clone();
        if !outward || !self.config.upstream.is_emergency(&number) {
            return None;
        }
        Some(
            match (
                self.route_status(RouteKind::Emergency),
                &self.config.upstream.emergency_local,
            ) {
                (RouteStatus::Up(..), _) | (RouteStatus::Down(_), None) => {
                    walk.trail
                        .push(format!("{number} is an emergency number: emergency route"));
                    Step::Done(walk.upstream(RouteKind::Emergency, number))
                }
                (_, Some(local)) => {
                    walk.trail.push(format!(
                        "{number} is an emergency number and no emergency route is up: \
                         it rings {local} (emergency_local)"
                    ));
                    walk.number = local.clone();
                    Step::Next
                }
                (RouteStatus::None, None) => Step::Done(walk.fail(
                    (404, "Not Found (no emergency route)", CallOutcome::Unknown),
                    format!(
                        "{number} is an emergency number, but there is no emergency route \
                         or emergency_local"
                    ),
                )),
            },
        )
    }

    /// What the number the walk stands at is: an extension, a group, a number
    /// outside, or nothing that can be called.
    fn number_step(&self, walk: &mut Walk, caller: Caller, outward: bool) -> Step {
        let cfg = &self.config;
        let number = walk.number.clone();
        let target = cfg.target_of(&number);
        if let (Target::Extension(n) | Target::Group(n), Some(prefix)) =
            (&target, cfg.upstream.site_prefix.as_deref())
        {
            if number.trim() != n.to_string() {
                walk.trail
                    .push(format!("{number} is {n} here (site prefix {prefix})"));
            }
        }
        match target {
            Target::Extension(n) => self.extension_step(walk, n, caller),
            Target::Group(g) => Step::Done(self.group_step(walk, g, caller)),
            Target::External(s)
                if !s.is_empty()
                    && s.len() < usize::from(cfg.server.plan.digits())
                    && s.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Step::Done(walk.fail(
                    (484, "Address Incomplete", CallOutcome::Incomplete),
                    format!("{s} is too short"),
                ))
            }
            Target::System | Target::All => Step::Done(walk.fail(
                (404, "Not Found", CallOutcome::Unknown),
                format!("{number} cannot be called"),
            )),
            Target::External(s)
                if outward
                    && !s.is_empty()
                    && s.len() <= 32
                    && self.route_status(RouteKind::Default) != RouteStatus::None
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"+*#-._".contains(&b)) =>
            {
                let to = if cfg.upstream.site_prefix.is_some() {
                    "to the building"
                } else {
                    "upstream"
                };
                walk.trail.push(format!("{s} is not local: {to}"));
                Step::Done(walk.upstream(RouteKind::Default, s))
            }
            Target::Unknown(s) | Target::External(s) => Step::Done(walk.fail(
                (404, "Not Found", CallOutcome::Unknown),
                format!("{s} is not a number here"),
            )),
        }
    }

    /// Extension `n`: its forward (always; on busy or DND; when not registered),
    /// busy, unavailable, or it rings with its coverage.
    fn extension_step(&self, walk: &mut Walk, n: u16, caller: Caller) -> Step {
        let s = self.ext_settings(n);
        // A forward kept from before the policy allowed it no longer applies.
        let follow = |kind: ForwardKind| {
            s.forward(kind)
                .map(|f| f.target.clone())
                .filter(|t| self.forward_allowed(t).is_ok())
        };
        if let Some(t) = follow(ForwardKind::Always) {
            walk.trail.push(format!("{n} forwards every call to {t}"));
            return walk.forward(n, t, HopReason::Always);
        }
        let busy_reason = if s.dnd {
            Some("is on do not disturb")
        } else if self.is_busy(n) {
            Some("is busy (in a call, without call waiting)")
        } else {
            None
        };
        if let Some(why) = busy_reason {
            if let Some(t) = follow(ForwardKind::Busy) {
                walk.trail
                    .push(format!("{n} {why}, and forwards on busy to {t}"));
                return walk.forward(n, t, HopReason::Busy);
            }
            let reason = if s.dnd {
                "Busy Here (do not disturb)"
            } else {
                "Busy Here"
            };
            return Step::Done(
                walk.fail((486, reason, CallOutcome::Busy), format!("{n} {why}: busy")),
            );
        }
        if self.registrar.contacts(n).is_empty() {
            if let Some(t) = follow(ForwardKind::NoAnswer).or_else(|| follow(ForwardKind::Busy)) {
                walk.trail
                    .push(format!("{n} is not registered, so it forwards to {t}"));
                return walk.forward(n, t, HopReason::Unregistered);
            }
            return Step::Done(walk.fail(
                (
                    480,
                    "Temporarily Unavailable (not registered)",
                    CallOutcome::Unavailable,
                ),
                format!("{n} is not registered: unavailable"),
            ));
        }
        let line = self.config.lines.get(&n);
        let mut now = vec![n];
        now.extend(
            self.coverage_of(n)
                .iter()
                .copied()
                .filter(|e| self.is_free(*e, caller)),
        );
        let later: Vec<u16> = line
            .map(|l| {
                l.delayed
                    .iter()
                    .copied()
                    .filter(|e| !now.contains(e))
                    .collect()
            })
            .unwrap_or_default();
        let delay = line.map_or(2, |l| l.delay);
        let contacts = self.registrar.contacts(n).len();
        walk.trail
            .push(format!("{n} rings on {contacts} registered contact(s)"));
        if now.len() > 1 {
            walk.trail
                .push(format!("coverage rings too: {}", join(&now[1..])));
        }
        if !later.is_empty() {
            walk.trail
                .push(format!("after {delay} rings: {}", join(&later)));
        }
        let noanswer = follow(ForwardKind::NoAnswer);
        if let Some(t) = &noanswer {
            walk.trail.push(format!(
                "unanswered after {} rings it forwards to {t}",
                self.config.calls.noanswer
            ));
        }
        Step::Done(Resolution::Ring {
            primary: n,
            now,
            later,
            delay,
            noanswer,
            hops: std::mem::take(&mut walk.hops),
            trail: std::mem::take(&mut walk.trail),
        })
    }

    /// Group `g`: its members that are free ring together.
    fn group_step(&self, walk: &mut Walk, g: u16, caller: Caller) -> Resolution {
        let ringing: Vec<u16> = self
            .members_of(g)
            .iter()
            .copied()
            .filter(|e| self.is_free(*e, caller))
            .collect();
        if ringing.is_empty() {
            return walk.fail(
                (
                    480,
                    "Temporarily Unavailable (nobody in the group can take it)",
                    CallOutcome::Unavailable,
                ),
                format!("group {g}: no member is free"),
            );
        }
        walk.trail
            .push(format!("group {g} rings {}", join(&ringing)));
        Resolution::Ring {
            primary: ringing[0],
            now: ringing,
            later: Vec::new(),
            delay: 0,
            noanswer: None,
            hops: std::mem::take(&mut walk.hops),
            trail: std::mem::take(&mut walk.trail),
        }
    }

    /// Whether an extension may be forwarded to `t`: an extension or group, or
    /// an outside number `[upstream] forward_prefixes` allows when there is a
    /// route to take it; never an
    /// emergency number (the caller's emergency call would be someone else's).
    fn forward_allowed(&self, t: &str) -> Result<(), Refusal> {
        let cfg = &self.config;
        if cfg.upstream.is_emergency(t) {
            return Err(Refusal::EmergencyTarget(t.to_string()));
        }
        match cfg.target_of(t) {
            Target::Extension(_) | Target::Group(_) => Ok(()),
            Target::External(_) if cfg.upstream.route.is_none() => {
                Err(Refusal::NoUpstreamRoute(t.to_string()))
            }
            Target::External(_) if cfg.upstream.may_forward_to(t) => Ok(()),
            Target::External(_) => Err(Refusal::OutsideNotAllowed(t.to_string())),
            Target::Unknown(_) => Err(Refusal::NotAnExtension(t.to_string())),
            Target::All | Target::System => Err(Refusal::CannotForwardTo(t.to_string())),
        }
    }

    /// Set or clear a forward of `ext` (FIFO, keypad, `/forward`).
    pub(super) fn set_forward(
        &mut self,
        now_ms: u64,
        ext: u16,
        kind: ForwardKind,
        target: Option<&str>,
        until_ms: Option<u64>,
    ) -> Result<String, Refusal> {
        if !self.config.is_configured(ext) {
            return Err(Refusal::NoExtension(ext));
        }
        if let Some(t) = target {
            self.forward_allowed(t)?;
        }
        if until_ms.is_some_and(|u| u <= now_ms) {
            return Err(Refusal::TimePassed);
        }
        let plan = self.config.server.plan;
        let lines = &self.config.lines;
        let as_ext = |s: &str| {
            s.parse::<u16>()
                .ok()
                .filter(|n| s.len() == usize::from(plan.digits()) && lines.contains_key(n))
        };
        let text = self
            .settings
            .set_forward(ext, kind, target, until_ms, as_ext)?;
        self.settings_changed(ext);
        Ok(text)
    }

    /// Switch DND of `ext`.
    pub(super) fn set_dnd(
        &mut self,
        now_ms: u64,
        ext: u16,
        on: bool,
        until_ms: Option<u64>,
    ) -> Result<String, Refusal> {
        if !self.config.is_configured(ext) {
            return Err(Refusal::NoExtension(ext));
        }
        if until_ms.is_some_and(|u| u <= now_ms) {
            return Err(Refusal::TimePassed);
        }
        let text = self.settings.set_dnd(ext, on, until_ms);
        self.settings_changed(ext);
        Ok(text)
    }

    /// Every speed dial, in code order: the code, what it dials now (`None`: the
    /// configuration's dial is cleared at run time) and what the configuration
    /// says for it.
    pub(super) fn speed_dials(&self) -> Vec<(String, Option<String>, Option<String>)> {
        let codes: std::collections::BTreeSet<&String> = self
            .config
            .speed
            .keys()
            .chain(self.settings.speed.keys())
            .collect();
        codes
            .into_iter()
            .map(|c| {
                (
                    c.clone(),
                    self.speed_dial(c),
                    self.config.speed.get(c).cloned(),
                )
            })
            .collect()
    }

    /// Set or clear a speed dial.
    pub(super) fn set_speed(
        &mut self,
        code: &str,
        target: Option<&str>,
    ) -> Result<String, Refusal> {
        let cfg = &self.config;
        if let Some(why) = speed_code_clash(cfg.server.plan, &cfg.groups, &cfg.features, code) {
            return Err(Refusal::SpeedRefused {
                code: code.to_string(),
                why,
            });
        }
        let from_config = self.config.speed.get(code).map(String::as_str);
        match (target, from_config) {
            (None, None) => {
                self.settings.speed.remove(code);
            }
            (t, _) => {
                self.settings
                    .speed
                    .insert(code.to_string(), t.map(str::to_string));
            }
        }
        self.out.settings_changed = true;
        Ok(match target {
            Some(t) => format!("speed dial {code} -> {t}"),
            None => format!("speed dial {code} cleared"),
        })
    }

    fn settings_changed(&mut self, ext: u16) {
        self.out.settings_changed = true;
        self.out.settings.insert(ext);
    }

    /// Settings that reverted by themselves.
    pub(super) fn expire_settings(&mut self, now_ms: u64) {
        if self.settings.next_expiry().is_none_or(|t| t > now_ms) {
            return;
        }
        for e in self.settings.expire(now_ms) {
            log::info!("{}: {} ended (expiry)", e.ext, e.what);
            self.out.events.push(Event::Notice {
                text: format!("{}: {} ended (expiry)", e.ext, e.what),
            });
            self.settings_changed(e.ext);
        }
    }

    /// Why a call to `dialled` (an extension, or any number a phone could dial)
    /// goes where it goes: the steps followed, in order, and the conclusion.
    pub(super) fn why(&self, dialled: &str) -> Result<(Vec<String>, String), Refusal> {
        let ext = match self.config.target_of(dialled) {
            Target::Extension(n) => Some(n),
            Target::Unknown(n) => return Err(Refusal::NoSuchNumber(n)),
            _ => None,
        };
        let (trail, end) = match self.resolve(dialled, Caller::Nobody) {
            Resolution::Ring {
                primary,
                now,
                trail,
                ..
            } => (
                trail,
                format!("a call to {dialled} rings {} (for {primary})", join(&now)),
            ),
            Resolution::Fail {
                code,
                reason,
                trail,
                ..
            } => (trail, format!("a call to {dialled} gets {code} {reason}")),
            Resolution::Upstream {
                kind,
                number,
                trail,
                ..
            } => {
                let state = match self.route_status(kind) {
                    RouteStatus::Up(_, peer) => format!("connected to {peer}"),
                    _ => "not connected: callers get 503".to_string(),
                };
                let to = match (kind, &self.config.upstream.site_prefix) {
                    (RouteKind::Default, Some(_)) => "to the building".to_string(),
                    _ => format!("upstream on the {} route", kind.name()),
                };
                (
                    trail,
                    format!("a call to {dialled} goes {to} as {number} ({state})"),
                )
            }
        };
        let mut trail = trail;
        if let (name, Some(_)) = self.runstate() {
            trail.insert(0, format!("run state {name} in force"));
        }
        if let Some(ext) = ext {
            trail.push(self.digest_step(ext));
        }
        Ok((trail, end))
    }

    /// A keypad feature code dialled by `ext`; `None` when `dialled` is none.
    pub(super) fn feature_code(
        &mut self,
        now_ms: u64,
        ext: u16,
        dialled: &str,
    ) -> Option<Result<String, Refusal>> {
        let codes = &self.config.features;
        Some(match codes.read(dialled)? {
            FeatureUse::Dnd(on) => self.set_dnd(now_ms, ext, on, None),
            FeatureUse::ForwardOff(kind) => self.set_forward(now_ms, ext, kind, None, None),
            FeatureUse::Forward(kind, target) => {
                let target = target.to_string();
                self.set_forward(now_ms, ext, kind, Some(&target), None)
            }
        })
    }
}

fn join(exts: &[u16]) -> String {
    exts.iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
