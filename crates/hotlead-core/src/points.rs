//! Fixed-point score arithmetic.
//!
//! Scores are kept in hundredths of a point so that a total is *exactly* the sum of its
//! contributions, whatever the decay factors were, and the same inputs always print the
//! same figures.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A score value with two decimal places.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Points(i64);

impl Points {
    pub const ZERO: Points = Points(0);

    /// Points from a whole number.
    pub const fn whole(points: i64) -> Self {
        Points(points * 100)
    }

    /// Points from hundredths of a point.
    pub const fn from_hundredths(hundredths: i64) -> Self {
        Points(hundredths)
    }

    /// Points from a float, rounded half away from zero to the nearest hundredth.
    /// Non-finite input gives zero; callers validate their floats before.
    pub fn from_f64(value: f64) -> Self {
        if !value.is_finite() {
            return Points::ZERO;
        }
        Points((value * 100.0).round() as i64)
    }

    pub const fn hundredths(self) -> i64 {
        self.0
    }

    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 100.0
    }

    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// These points scaled by a factor in `0.0..=1.0`, rounded towards zero so that a
    /// decayed value is never larger (in magnitude) than the undecayed one.
    pub fn scaled(self, factor: f64) -> Self {
        let factor = factor.clamp(0.0, 1.0);
        // `as` truncates towards zero, as `trunc` does (without a call to it).
        Points((self.0 as f64 * factor) as i64)
    }
}

impl Add for Points {
    type Output = Points;
    fn add(self, rhs: Points) -> Points {
        Points(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for Points {
    fn add_assign(&mut self, rhs: Points) {
        *self = *self + rhs;
    }
}

impl Sub for Points {
    type Output = Points;
    fn sub(self, rhs: Points) -> Points {
        Points(self.0.saturating_sub(rhs.0))
    }
}

impl Neg for Points {
    type Output = Points;
    fn neg(self) -> Points {
        Points(-self.0)
    }
}

impl Sum for Points {
    fn sum<I: Iterator<Item = Points>>(iter: I) -> Points {
        iter.fold(Points::ZERO, Add::add)
    }
}

impl Points {
    /// Appends the points as they display, without going through a formatter: an
    /// explanation's notes write many.
    pub(crate) fn push_to(self, out: &mut String) {
        let mut text = [0u8; 24];
        out.push_str(self.text(&mut text));
    }

    /// `30`, `-12.5`, `0.25`: no trailing zeros, so readers see whole points as whole.
    /// Written backwards into `text` and returned in one piece: explanations print many
    /// points, and this is cheaper than formatting each part.
    fn text(self, text: &mut [u8; 24]) -> &str {
        let mut at = text.len();
        let mut put = |byte: u8| {
            at -= 1;
            text[at] = byte;
        };
        let abs = self.0.unsigned_abs();
        let (mut whole, frac) = (abs / 100, abs % 100);
        match frac {
            0 => {}
            f2 if f2 % 10 == 0 => {
                put(b'0' + (f2 / 10) as u8);
                put(b'.');
            }
            f2 => {
                put(b'0' + (f2 % 10) as u8);
                put(b'0' + (f2 / 10) as u8);
                put(b'.');
            }
        }
        loop {
            put(b'0' + (whole % 10) as u8);
            whole /= 10;
            if whole == 0 {
                break;
            }
        }
        if self.0 < 0 {
            put(b'-');
        }
        // Only ASCII digits, a point and a sign were written.
        std::str::from_utf8(&text[at..]).unwrap_or_default()
    }
}

impl fmt::Display for Points {
    /// `30`, `-12.5`, `0.25`: no trailing zeros, so readers see whole points as whole.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text(&mut [0; 24]))
    }
}

impl Serialize for Points {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 % 100 == 0 {
            serializer.serialize_i64(self.0 / 100)
        } else {
            serializer.serialize_f64(self.as_f64())
        }
    }
}

impl<'de> Deserialize<'de> for Points {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if !value.is_finite() {
            return Err(serde::de::Error::custom("points must be a finite number"));
        }
        Ok(Points::from_f64(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_without_trailing_zeros() {
        assert_eq!(Points::whole(30).to_string(), "30");
        assert_eq!(Points::from_f64(-12.5).to_string(), "-12.5");
        assert_eq!(Points::from_f64(0.25).to_string(), "0.25");
        assert_eq!(Points::from_f64(-0.05).to_string(), "-0.05");
    }

    #[test]
    fn displays_extremes_and_small_fractions() {
        for (hundredths, text) in [
            (0, "0"),
            (5, "0.05"),
            (-5, "-0.05"),
            (10, "0.1"),
            (-110, "-1.1"),
            (12345, "123.45"),
            (-100, "-1"),
            (i64::MAX, "92233720368547758.07"),
            (i64::MIN, "-92233720368547758.08"),
        ] {
            assert_eq!(Points::from_hundredths(hundredths).to_string(), text);
        }
    }

    #[test]
    fn scaling_never_grows_the_magnitude() {
        assert_eq!(Points::whole(30).scaled(0.5), Points::whole(15));
        assert_eq!(
            Points::from_hundredths(-999).scaled(0.999),
            Points::from_hundredths(-998)
        );
        assert_eq!(Points::whole(10).scaled(1.5), Points::whole(10));
    }

    #[test]
    fn serialises_whole_points_as_integers() {
        assert_eq!(serde_json::to_string(&Points::whole(80)).unwrap(), "80");
        assert_eq!(
            serde_json::to_string(&Points::from_f64(7.5)).unwrap(),
            "7.5"
        );
    }
}
