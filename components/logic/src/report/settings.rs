//! The report component's settings, read from its component variables
//! (`[component.<id>.variables]` in `spin.toml`), each with a default so that the
//! component runs unconfigured. A value that does not parse fails the run with
//! the variable named, rather than producing a wrong report.

use super::body::ReportKind;
use super::money::{Currency, Decimal};
use super::period::parse_time_zone;
use chrono_tz::Tz;

#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Which reports a tick produces (`reports = "daily, weekly, invoice"`).
    pub kinds: Vec<ReportKind>,
    /// The zone periods are aligned to (`time_zone`, default `UTC`).
    pub time_zone: Tz,
    /// Gaps between rows longer than this are listed (`gap_threshold_secs`, 300).
    pub gap_threshold_secs: f64,
    /// The BOOL column whose true values are motion events (`motion_column`).
    pub motion_column: String,
    /// The `deviceinfo` fields holding battery level and firmware.
    pub battery_field: String,
    pub firmware_field: String,
    /// Below this battery level the report flags it (`battery_low_threshold`, 20).
    pub battery_low_threshold: f64,
    pub billing: Billing,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Billing {
    pub currency: Currency,
    pub price_per_thousand_rows: Decimal,
    pub price_per_thousand_messages: Decimal,
    pub price_per_device_month: Decimal,
    /// In percent.
    pub tax_rate: Decimal,
    pub tax_label: String,
    pub payment_terms_days: u32,
    pub issuer_name: String,
    pub issuer_address: Vec<String>,
    pub customer_name: String,
    pub customer_address: Vec<String>,
    pub notes: String,
}

/// A setting that does not parse: the variable, its value and what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingError(pub String);

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Settings {
    /// Reads every setting through `var`, which returns a component variable's
    /// value or `None` when the manifest does not set it.
    pub fn read(var: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingError> {
        let text = |name: &str, default: &str| var(name).unwrap_or_else(|| default.to_owned());
        let parsed = |name: &str, default: &str, expected: &str, parse: &dyn Fn(&str) -> bool| {
            let value = text(name, default);
            if parse(&value) {
                Ok(value)
            } else {
                Err(SettingError(format!(
                    "component variable `{name}` is {value:?}: expected {expected}"
                )))
            }
        };
        let number = |name: &str, default: &str| -> Result<f64, SettingError> {
            let value = parsed(name, default, "a non-negative number", &|v| {
                v.trim()
                    .parse::<f64>()
                    .is_ok_and(|n| n.is_finite() && n >= 0.0)
            })?;
            Ok(value.trim().parse().expect("checked above"))
        };
        let decimal = |name: &str| -> Result<Decimal, SettingError> {
            let value = parsed(name, "0", "a decimal such as 0.50", &|v| {
                Decimal::parse(v).is_some()
            })?;
            Ok(Decimal::parse(&value).expect("checked above"))
        };
        let lines = |name: &str| -> Vec<String> {
            text(name, "")
                .split(['\n', ';'])
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        };

        let kinds_text = parsed(
            "reports",
            "daily, weekly, invoice",
            "a list of daily, weekly, invoice",
            &|v| {
                v.split(',')
                    .all(|k| ReportKind::from_name(k.trim()).is_some())
            },
        )?;
        let mut kinds: Vec<ReportKind> = Vec::new();
        for kind in kinds_text
            .split(',')
            .filter_map(|k| ReportKind::from_name(k.trim()))
        {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        let zone = parsed(
            "time_zone",
            "UTC",
            "an IANA time zone such as Europe/Paris",
            &|v| parse_time_zone(v).is_some(),
        )?;
        let currency = parsed("currency", "EUR", "an ISO 4217 code such as EUR", &|v| {
            Currency::parse(v).is_some()
        })?;
        let terms = parsed("payment_terms_days", "30", "a whole number of days", &|v| {
            v.trim().parse::<u32>().is_ok()
        })?;
        let terms: u32 = terms.trim().parse().expect("checked above");

        Ok(Settings {
            kinds,
            time_zone: parse_time_zone(&zone).expect("checked above"),
            gap_threshold_secs: number("gap_threshold_secs", "300")?,
            motion_column: text("motion_column", "motion"),
            battery_field: text("battery_field", "batt_lvl"),
            firmware_field: text("firmware_field", "fw_ver"),
            battery_low_threshold: number("battery_low_threshold", "20")?,
            billing: Billing {
                currency: Currency::parse(&currency).expect("checked above"),
                price_per_thousand_rows: decimal("price_per_thousand_rows")?,
                price_per_thousand_messages: decimal("price_per_thousand_messages")?,
                price_per_device_month: decimal("price_per_device_month")?,
                tax_rate: decimal("tax_rate")?,
                tax_label: text("tax_label", "Tax"),
                payment_terms_days: terms,
                issuer_name: text("issuer_name", "cromflag IoT services"),
                issuer_address: lines("issuer_address"),
                customer_name: text("customer_name", ""),
                customer_address: lines("customer_address"),
                notes: text("invoice_notes", ""),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_variables() {
        let settings = Settings::read(|_| None).unwrap();
        assert_eq!(settings.kinds, ReportKind::ALL);
        assert_eq!(settings.time_zone, Tz::UTC);
        assert_eq!(settings.gap_threshold_secs, 300.0);
        assert_eq!(settings.billing.currency.code, "EUR");
        assert!(settings.billing.price_per_thousand_rows.is_zero());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let bad = |name: &'static str, value: &'static str| {
            Settings::read(move |n| (n == name).then(|| value.to_owned()))
                .unwrap_err()
                .0
        };
        assert!(bad("time_zone", "Mars/Olympus").contains("`time_zone`"));
        assert!(bad("price_per_thousand_rows", "-1").contains("`price_per_thousand_rows`"));
        assert!(bad("reports", "daily, hourly").contains("`reports`"));
        assert!(bad("currency", "euro").contains("`currency`"));
        assert!(bad("gap_threshold_secs", "soon").contains("`gap_threshold_secs`"));
    }

    #[test]
    fn lists_and_addresses() {
        let settings = Settings::read(|name| match name {
            "reports" => Some("invoice,daily".into()),
            "issuer_address" => Some("1 Main St; 75001 Paris\nFrance".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(settings.kinds, [ReportKind::Invoice, ReportKind::Daily]);
        assert_eq!(
            settings.billing.issuer_address,
            ["1 Main St", "75001 Paris", "France"]
        );
    }
}
