//! Time zones of schedules (`timezone:`), from the IANA database bundled in
//! the binary, so a fresh machine needs no tzdata.

use jiff::tz::TimeZone;

/// The zone of a name such as `Europe/Berlin` or `UTC`, or what is wrong with it.
pub(crate) fn time_zone(name: &str) -> Result<TimeZone, String> {
    if name == "Z" {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name).map_err(|_| {
        let names: Vec<String> = jiff::tz::db().available().map(|n| n.as_str().to_owned()).collect();
        let hint = crate::base::suggest::hint(name, names.iter().map(String::as_str));
        format!("`{name}` is not a time zone of the IANA database{hint}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_and_mistakes_get_a_suggestion() {
        assert!(time_zone("Europe/Berlin").is_ok());
        assert!(time_zone("UTC").is_ok());
        let e = time_zone("Europe/Berln").err().unwrap_or_default();
        assert!(e.contains("did you mean `Europe/Berlin`?"), "{e}");
    }
}
