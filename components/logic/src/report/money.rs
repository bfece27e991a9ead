//! Exact decimal arithmetic for invoices: prices and rates are read as decimal
//! strings into integer millionths, amounts are rounded once, half up, to the
//! currency's minor unit. No float ever touches money.

/// Millionths of a unit: the precision prices and rates are given in.
const SCALE: i128 = 1_000_000;

/// A non-negative decimal with at most six fraction digits, in millionths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Decimal(i128);

impl Decimal {
    pub const ZERO: Decimal = Decimal(0);

    /// Parses `12`, `0.5` or `0.000125`; `None` for a sign, an exponent, more
    /// than six fraction digits or anything else.
    pub fn parse(text: &str) -> Option<Decimal> {
        let text = text.trim();
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || whole.len() > 18
            || !digits(whole)
            || !digits(fraction)
            || fraction.len() > 6
        {
            return None;
        }
        let whole: i128 = whole.parse().ok()?;
        let fraction: i128 = format!("{fraction:0<6}").parse().ok()?;
        Some(Decimal(whole * SCALE + fraction))
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The decimal text with at least `digits` fraction digits, as prices are
    /// printed: `0.50`, `2.00` for two, `0.000125` whatever the minimum.
    pub fn to_text_min(self, digits: u32) -> String {
        let text = self.to_text();
        let fraction = text.split_once('.').map_or(0, |(_, f)| f.len());
        match (fraction, digits as usize) {
            (_, 0) => text,
            (0, d) => format!("{text}.{}", "0".repeat(d)),
            (f, d) if f < d => format!("{text}{}", "0".repeat(d - f)),
            _ => text,
        }
    }

    /// The decimal text with trailing fraction zeros trimmed: `0.5`, `12`.
    pub fn to_text(self) -> String {
        let whole = self.0 / SCALE;
        let fraction = self.0 % SCALE;
        if fraction == 0 {
            return whole.to_string();
        }
        let fraction = format!("{fraction:06}");
        format!("{whole}.{}", fraction.trim_end_matches('0'))
    }
}

/// A currency and the number of digits of its minor unit (ISO 4217).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Currency {
    pub code: String,
    pub minor_digits: u32,
}

impl Currency {
    /// A three-letter ISO 4217 code; `None` otherwise.
    pub fn parse(code: &str) -> Option<Currency> {
        let code = code.trim().to_ascii_uppercase();
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let minor_digits = match code.as_str() {
            "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "PYG" | "UGX" | "XAF" | "XOF" => 0,
            "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
            _ => 2,
        };
        Some(Currency { code, minor_digits })
    }

    fn minor_per_unit(&self) -> i128 {
        10i128.pow(self.minor_digits)
    }

    /// `quantity × unit_price ÷ per`, rounded half up to the minor unit.
    pub fn amount(&self, quantity: u64, unit_price: Decimal, per: u64) -> Money {
        let numerator = i128::from(quantity) * unit_price.0 * self.minor_per_unit();
        Money(div_round_half_up(numerator, SCALE * i128::from(per.max(1))))
    }

    /// `rate` percent of `base`, rounded half up to the minor unit.
    pub fn percent_of(&self, base: Money, rate: Decimal) -> Money {
        Money(div_round_half_up(base.0 * rate.0, 100 * SCALE))
    }

    /// `12.34` for 1234 minor units of a two-digit currency.
    pub fn format(&self, money: Money) -> String {
        let per = self.minor_per_unit();
        if self.minor_digits == 0 {
            return money.0.to_string();
        }
        format!(
            "{}.{:0width$}",
            money.0 / per,
            money.0 % per,
            width = self.minor_digits as usize
        )
    }
}

/// An amount in minor units (cents), never negative here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Money(pub i128);

impl std::ops::Add for Money {
    type Output = Money;
    fn add(self, other: Money) -> Money {
        Money(self.0 + other.0)
    }
}

fn div_round_half_up(numerator: i128, denominator: i128) -> i128 {
    (numerator + denominator / 2) / denominator
}

/// `quantity ÷ per` as exact decimal text: 6 rows per thousand is `0.006`.
pub fn quantity_text(quantity: u64, per: u64) -> String {
    let per = per.max(1);
    let whole = quantity / per;
    let rest = quantity % per;
    if rest == 0 {
        return whole.to_string();
    }
    let digits = per.to_string().len() - 1;
    let fraction = format!("{rest:0digits$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly_or_not_at_all() {
        assert_eq!(Decimal::parse("0.50"), Some(Decimal(500_000)));
        assert_eq!(Decimal::parse("12"), Some(Decimal(12_000_000)));
        assert_eq!(Decimal::parse("0.000125").unwrap().to_text(), "0.000125");
        assert_eq!(Decimal::parse("8.5").unwrap().to_text(), "8.5");
        assert_eq!(Decimal::parse("0.5").unwrap().to_text_min(2), "0.50");
        assert_eq!(Decimal::parse("2").unwrap().to_text_min(2), "2.00");
        assert_eq!(
            Decimal::parse("0.000125").unwrap().to_text_min(2),
            "0.000125"
        );
        assert_eq!(Decimal::parse("150").unwrap().to_text_min(0), "150");
        for bad in ["", "-1", "1e3", "0.0000001", "1.2.3", ".5", "abc"] {
            assert_eq!(Decimal::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn amounts_round_half_up_to_the_minor_unit() {
        let eur = Currency::parse("eur").unwrap();
        let price = Decimal::parse("0.50").unwrap();
        // 6 rows at 0.50 per 1,000 rows = 0.003 → 0.00; 10 rows = 0.005 → 0.01.
        assert_eq!(eur.format(eur.amount(6, price, 1000)), "0.00");
        assert_eq!(eur.format(eur.amount(10, price, 1000)), "0.01");
        assert_eq!(eur.format(eur.amount(2500, price, 1000)), "1.25");
        let subtotal = Money(1999);
        assert_eq!(
            eur.format(eur.percent_of(subtotal, Decimal::parse("20").unwrap())),
            "4.00"
        );
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(
            jpy.format(jpy.amount(3, Decimal::parse("150").unwrap(), 1)),
            "450"
        );
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(kwd.format(Money(1234)), "1.234");
        assert_eq!(Currency::parse("euro"), None);
    }

    #[test]
    fn quantities_are_exact() {
        assert_eq!(quantity_text(6, 1000), "0.006");
        assert_eq!(quantity_text(12_000, 1000), "12");
        assert_eq!(quantity_text(12_340, 1000), "12.34");
        assert_eq!(quantity_text(1, 1), "1");
    }
}
