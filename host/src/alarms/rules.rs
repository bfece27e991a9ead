//! Alarm rules: what the manifest declares, and when a threshold fires and
//! clears. Pure: no store and no clock; `Alarms` hands it readings and acts
//! on its verdicts.
//!
//! Inactivity: a device silent for its timeout, the variable
//! `inactivity_timeout` or the device's own in
//! `[application.tool.cromflag.alarms.inactivity_timeout]` ("off" for none).
//!
//! Thresholds (`[[application.tool.cromflag.alarms.rule]]`): a column of the
//! device's telemetry or of its `devices` row (`batt_lvl`) compared to a
//! number (`when = "temperature > 35"`). A reading that
//! breaches starts a pending breach; the rule fires at the first breaching
//! reading at least `for` after the breach began, by the readings' own
//! timestamps (a reading that does not breach ends the pending breach, so a
//! single spike does not fire). A fired rule clears at the first reading back
//! past the threshold by `hysteresis`. Time is the device's, not the
//! host's: a backlog sent late is judged as it happened, and a device that
//! stops sending mid-breach is the inactivity rule's business. (A `devices`
//! row has no time of its own: it is judged as of when it committed.)

use crate::manifest::{App, ThresholdRuleConfig};
use crate::retention::parse_keep;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The inactivity rule's name in alarms.
pub const INACTIVITY: &str = "inactivity";

/// Every rule in force.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    inactivity_default: Option<Duration>,
    inactivity_by_device: BTreeMap<String, Option<Duration>>,
    thresholds: Vec<Threshold>,
}

/// One threshold rule, read.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub name: String,
    pub column: String,
    op: Op,
    limit: f64,
    /// How long a breach must last before it fires (ms).
    hold_ms: i64,
    hysteresis: f64,
    pub severity: String,
    /// `None`: every device without a rule of this name of its own.
    devices: Option<BTreeSet<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Above,
    AtLeast,
    Below,
    AtMost,
}

impl Op {
    /// Longest first, so that `>=` is not read as `>`.
    const WRITTEN: [(&'static str, Op); 4] = [
        (">=", Op::AtLeast),
        ("<=", Op::AtMost),
        (">", Op::Above),
        ("<", Op::Below),
    ];
}

impl Rules {
    pub fn from_app(app: &App) -> Result<Rules> {
        let default = app.variables.get("inactivity_timeout").unwrap_or("");
        let inactivity_default =
            parse_timeout(default).map_err(|e| anyhow!("variable inactivity_timeout: {e}"))?;
        let mut inactivity_by_device = BTreeMap::new();
        for (device, text) in &app.alarms.inactivity_timeout {
            let timeout = parse_timeout(text).map_err(|e| {
                anyhow!("[application.tool.cromflag.alarms.inactivity_timeout] `{device}`: {e}")
            })?;
            inactivity_by_device.insert(device.clone(), timeout);
        }
        let thresholds = app
            .alarms
            .rules
            .iter()
            .map(|rule| {
                Threshold::read(rule).with_context(|| {
                    format!("[[application.tool.cromflag.alarms.rule]] `{}`", rule.name)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        for (i, rule) in thresholds.iter().enumerate() {
            let clash = thresholds[..i]
                .iter()
                .any(|other| other.name == rule.name && other.overlaps(rule));
            if clash {
                bail!(
                    "[[application.tool.cromflag.alarms.rule]] `{}` is declared twice for the same devices",
                    rule.name
                );
            }
        }
        Ok(Rules {
            inactivity_default,
            inactivity_by_device,
            thresholds,
        })
    }

    /// How long `device` may stay silent; `None`: forever.
    pub fn inactivity_timeout(&self, device: &str) -> Option<Duration> {
        match self.inactivity_by_device.get(device) {
            Some(own) => *own,
            None => self.inactivity_default,
        }
    }

    /// The threshold rules that watch `device`: of each name, the one that
    /// lists it, else the one for every device.
    pub fn thresholds_for<'a>(&'a self, device: &'a str) -> impl Iterator<Item = &'a Threshold> {
        self.thresholds
            .iter()
            .filter(move |rule| match &rule.devices {
                Some(devices) => devices.contains(device),
                None => !self.thresholds.iter().any(|other| {
                    other.name == rule.name
                        && other.devices.as_ref().is_some_and(|d| d.contains(device))
                }),
            })
    }

    /// Whether the threshold rule `name` still watches `device`.
    pub fn watches(&self, name: &str, device: &str) -> bool {
        self.thresholds_for(device).any(|rule| rule.name == name)
    }
}

/// A timeout as written: a duration, or empty / "off" for none.
fn parse_timeout(text: &str) -> Result<Option<Duration>, String> {
    match text.trim() {
        "off" => Ok(None),
        text => parse_keep(text)
            .map_err(|_| format!("`{text}` is not a duration such as 15m or 2s, nor `off`")),
    }
}

/// One threshold rule's state for one device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Watch {
    /// The timestamp of the first reading of the breach under way.
    breaching_since: Option<i64>,
}

impl Watch {
    /// A breach under way since `since` (ms), as read back at start.
    pub fn breaching_since(since: i64) -> Watch {
        Watch {
            breaching_since: Some(since),
        }
    }

    /// When the breach under way began, if one is.
    pub fn pending(self) -> Option<i64> {
        self.breaching_since
    }
}

/// What a reading does to a threshold rule's alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Fire,
    Clear,
    Nothing,
}

impl Threshold {
    fn read(config: &ThresholdRuleConfig) -> Result<Threshold> {
        if config.name.is_empty() || config.name == INACTIVITY || config.name.contains(':') {
            bail!("a rule needs a name, without `:`, other than `{INACTIVITY}`");
        }
        let (column, op, limit) = Op::WRITTEN
            .iter()
            .find_map(|(written, op)| {
                let (column, limit) = config.when.split_once(written)?;
                Some((column.trim(), *op, limit.trim()))
            })
            .ok_or_else(|| {
                anyhow!(
                    "when = {:?}: write `<column> <op> <number>`, op one of > >= < <=",
                    config.when
                )
            })?;
        if column.is_empty() || column.contains(char::is_whitespace) {
            bail!(
                "when = {:?}: name one column before the operator",
                config.when
            );
        }
        let limit: f64 = limit
            .parse()
            .ok()
            .filter(|l: &f64| l.is_finite())
            .ok_or_else(|| anyhow!("when = {:?}: `{limit}` is not a number", config.when))?;
        let hold = match config.hold.as_deref() {
            None => Duration::ZERO,
            Some(text) => parse_keep(text)
                .map_err(|_| anyhow!("for = {text:?} is not a duration such as 5m"))?
                .unwrap_or(Duration::ZERO),
        };
        let hysteresis = config.hysteresis.unwrap_or(0.0);
        if !(hysteresis.is_finite() && hysteresis >= 0.0) {
            bail!("hysteresis must be a number of zero or more, not {hysteresis}");
        }
        Ok(Threshold {
            name: config.name.clone(),
            column: column.to_owned(),
            op,
            limit,
            hold_ms: i64::try_from(hold.as_millis()).unwrap_or(i64::MAX),
            hysteresis,
            severity: config
                .severity
                .clone()
                .unwrap_or_else(|| "warning".to_owned()),
            devices: config.devices.as_ref().map(|d| d.iter().cloned().collect()),
        })
    }

    fn overlaps(&self, other: &Threshold) -> bool {
        match (&self.devices, &other.devices) {
            (None, None) => true,
            (Some(a), Some(b)) => !a.is_disjoint(b),
            _ => false,
        }
    }

    fn breaches(&self, value: f64) -> bool {
        match self.op {
            Op::Above => value > self.limit,
            Op::AtLeast => value >= self.limit,
            Op::Below => value < self.limit,
            Op::AtMost => value <= self.limit,
        }
    }

    /// Back past the threshold by the hysteresis.
    fn clears(&self, value: f64) -> bool {
        match self.op {
            Op::Above => value <= self.limit - self.hysteresis,
            Op::AtLeast => value < self.limit - self.hysteresis,
            Op::Below => value >= self.limit + self.hysteresis,
            Op::AtMost => value > self.limit + self.hysteresis,
        }
    }

    /// Takes the reading `value` at `at` (ms) into `watch`; `firing`:
    /// whether this rule's alarm for the device is open.
    pub fn observe(&self, watch: &mut Watch, firing: bool, at: i64, value: f64) -> Verdict {
        if value.is_nan() {
            return Verdict::Nothing;
        }
        if firing {
            watch.breaching_since = None;
            return if self.clears(value) {
                Verdict::Clear
            } else {
                Verdict::Nothing
            };
        }
        if !self.breaches(value) {
            watch.breaching_since = None;
            return Verdict::Nothing;
        }
        let since = *watch.breaching_since.get_or_insert(at);
        if at.saturating_sub(since) >= self.hold_ms {
            watch.breaching_since = None;
            Verdict::Fire
        } else {
            Verdict::Nothing
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(when: &str, hold: Option<&str>, hysteresis: Option<f64>) -> Threshold {
        Threshold::read(&ThresholdRuleConfig {
            name: "hot".into(),
            when: when.into(),
            hold: hold.map(Into::into),
            hysteresis,
            severity: None,
            devices: None,
        })
        .unwrap()
    }

    /// Feeds `readings` (seconds, value) through `rule`, tracking whether it
    /// is firing; returns the verdicts that did something.
    fn run(rule: &Threshold, readings: &[(i64, f64)]) -> Vec<(i64, Verdict)> {
        let mut watch = Watch::default();
        let mut firing = false;
        let mut acted = Vec::new();
        for &(secs, value) in readings {
            match rule.observe(&mut watch, firing, secs * 1000, value) {
                Verdict::Nothing => {}
                verdict => {
                    firing = verdict == Verdict::Fire;
                    acted.push((secs, verdict));
                }
            }
        }
        acted
    }

    #[test]
    fn a_spike_shorter_than_for_does_not_fire_a_sustained_breach_fires_once() {
        let hot = rule("temperature > 35", Some("60s"), None);
        assert_eq!(
            run(&hot, &[(0, 20.0), (10, 40.0), (20, 20.0), (80, 40.0)]),
            []
        );
        assert_eq!(
            run(
                &hot,
                &[(0, 36.0), (30, 37.0), (59, 38.0), (60, 36.0), (90, 39.0)]
            ),
            [(60, Verdict::Fire)]
        );
    }

    #[test]
    fn hysteresis_holds_the_alarm_until_the_reading_is_back_far_enough() {
        let hot = rule("temperature > 35", None, Some(2.0));
        assert_eq!(
            run(
                &hot,
                &[(0, 36.0), (1, 34.0), (2, 33.5), (3, 33.0), (4, 36.0)]
            ),
            [(0, Verdict::Fire), (3, Verdict::Clear), (4, Verdict::Fire)]
        );
        let low = rule("batt_lvl <= 20", None, Some(5.0));
        assert_eq!(
            run(&low, &[(0, 21.0), (1, 20.0), (2, 25.0), (3, 25.5)]),
            [(1, Verdict::Fire), (3, Verdict::Clear)]
        );
    }

    #[test]
    fn rules_read_their_operators_and_refuse_what_they_cannot_read() {
        assert_eq!(rule("t >= 1.5", None, None).op, Op::AtLeast);
        assert_eq!(rule("t < -3", None, None).limit, -3.0);
        for bad in ["temperature", "> 3", "t > hot", "a b > 3", "t > NaN"] {
            let read = Threshold::read(&ThresholdRuleConfig {
                name: "r".into(),
                when: bad.into(),
                hold: None,
                hysteresis: None,
                severity: None,
                devices: None,
            });
            assert!(read.is_err(), "{bad} was read");
        }
    }

    #[test]
    fn a_rule_naming_a_device_overrides_the_rule_for_every_device() {
        let config = |devices: Option<Vec<&str>>, when: &str| ThresholdRuleConfig {
            name: "hot".into(),
            when: when.into(),
            hold: None,
            hysteresis: None,
            severity: None,
            devices: devices.map(|d| d.into_iter().map(String::from).collect()),
        };
        let rules = Rules {
            inactivity_default: None,
            inactivity_by_device: BTreeMap::new(),
            thresholds: vec![
                Threshold::read(&config(None, "t > 35")).unwrap(),
                Threshold::read(&config(Some(vec!["oven"]), "t > 250")).unwrap(),
            ],
        };
        let limits =
            |device| -> Vec<f64> { rules.thresholds_for(device).map(|r| r.limit).collect() };
        assert_eq!(limits("kitchen"), [35.0]);
        assert_eq!(limits("oven"), [250.0]);
    }
}
