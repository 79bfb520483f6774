//! The one exponential backoff: retries of steps, deliveries of events.

/// The wait in milliseconds before attempt `attempt + 1` (attempts count
/// from 1): `first` times `multiplier` to the power `attempt - 1`, at most `cap`.
pub(crate) fn exponential(first_ms: u64, multiplier: f64, attempt: u32, cap_ms: u64) -> u64 {
    let grown = first_ms as f64 * multiplier.powi(attempt.saturating_sub(1).min(64) as i32);
    grown.min(cap_ms as f64) as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn it_grows_by_the_multiplier_up_to_the_cap() {
        let waits: Vec<u64> = (1..=6).map(|a| super::exponential(1_000, 2.0, a, 10_000)).collect();
        assert_eq!(waits, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
        assert_eq!(super::exponential(1_000, 2.0, u32::MAX, 600_000), 600_000);
    }
}
