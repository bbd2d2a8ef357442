//! A local wall-clock time of day with minute precision, written `HH:MM`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::errors::WallTimeError;

/// Minutes in a day: the value of `24:00`.
const MINUTES_PER_DAY: u16 = 24 * 60;

/// A time of day on the local wall clock, from `00:00` to `24:00` inclusive, in whole minutes.
///
/// `24:00` exists so that an interval can run to the end of the day (`"22:00"`–`"24:00"`); it is
/// the same instant as `00:00` of the next day. The wire form is exactly two digits, a colon and
/// two digits (`"09:00"`, not `"9:00"` or `"09:00:00"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WallTime {
    minutes: u16,
}

impl WallTime {
    /// `00:00`, the start of a day.
    pub const MIDNIGHT: WallTime = WallTime { minutes: 0 };
    /// `24:00`, the end of a day.
    pub const END_OF_DAY: WallTime = WallTime {
        minutes: MINUTES_PER_DAY,
    };

    /// The time `hour:minute`; `24:00` is the only valid time with hour 24.
    pub fn new(hour: u8, minute: u8) -> Result<WallTime, WallTimeError> {
        let minutes = u16::from(hour) * 60 + u16::from(minute);
        if minute >= 60 || minutes > MINUTES_PER_DAY {
            return Err(WallTimeError(format!("{hour:02}:{minute:02}")));
        }
        Ok(WallTime { minutes })
    }

    /// Minutes since local midnight: 0 for `00:00`, 1440 for `24:00`.
    pub fn minutes_since_midnight(self) -> u16 {
        self.minutes
    }
}

impl FromStr for WallTime {
    type Err = WallTimeError;

    fn from_str(text: &str) -> Result<WallTime, WallTimeError> {
        let invalid = || WallTimeError(text.to_owned());
        let (hour, minute) = text.split_once(':').ok_or_else(invalid)?;
        let two_digits = |part: &str| part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(hour) || !two_digits(minute) {
            return Err(invalid());
        }
        let hour = hour.parse().map_err(|_| invalid())?;
        let minute = minute.parse().map_err(|_| invalid())?;
        WallTime::new(hour, minute).map_err(|_| invalid())
    }
}

impl fmt::Display for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.minutes / 60, self.minutes % 60)
    }
}

impl TryFrom<String> for WallTime {
    type Error = WallTimeError;

    fn try_from(text: String) -> Result<WallTime, WallTimeError> {
        text.parse()
    }
}

impl From<WallTime> for String {
    fn from(time: WallTime) -> String {
        time.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::WallTime;

    #[test]
    fn it_reads_and_writes_hh_mm_from_midnight_to_end_of_day() {
        for text in ["00:00", "09:05", "23:59", "24:00"] {
            let time: WallTime = text.parse().unwrap();
            assert_eq!(time.to_string(), text);
        }
        assert_eq!("24:00".parse::<WallTime>().unwrap(), WallTime::END_OF_DAY);
    }

    #[test]
    fn it_rejects_anything_but_two_digit_hours_and_minutes_within_the_day() {
        for text in [
            "", "9:00", "09:0", "0900", "09:00:00", "24:01", "25:00", "12:60", "-1:00", "+9:00",
            "ab:cd", "09:5 ",
        ] {
            let error = text.parse::<WallTime>().unwrap_err();
            assert!(error.to_string().contains("HH:MM"), "{text:?}: {error}");
        }
    }
}
