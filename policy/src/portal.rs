//! Browser (portal) sign-in rules: when to send a user back to sign in, and when to stop.

use crate::UnixTime;

/// What to do with a signed-in user who has no MFA on an MFA route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reprompt {
    /// Send the user back to sign in, asking for MFA. Carries the attempt count to remember.
    SignInAgain {
        /// Attempts made in the current window, this one included.
        attempts: u32,
        /// When the current window started.
        window_start: UnixTime,
    },
    /// Stop: the identity provider did not report MFA after `max` tries; show a 403 page.
    GiveUp,
}

/// The loop guard: at most `max` MFA re-prompts within `window_secs` of the first one.
pub fn reprompt(
    attempts: u32,
    window_start: UnixTime,
    max: u32,
    window_secs: u64,
    now: UnixTime,
) -> Reprompt {
    if attempts == 0 || window_start.plus(window_secs) <= now {
        return Reprompt::SignInAgain { attempts: 1, window_start: now };
    }
    if attempts >= max {
        return Reprompt::GiveUp;
    }
    Reprompt::SignInAgain { attempts: attempts + 1, window_start }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_after_max_tries_in_the_window_then_forgives() {
        let t = UnixTime(1_000);
        let mut state = (0, UnixTime(0));
        let mut outcomes = Vec::new();
        for _ in 0..3 {
            match reprompt(state.0, state.1, 2, 600, t) {
                Reprompt::SignInAgain { attempts, window_start } => {
                    state = (attempts, window_start);
                    outcomes.push(attempts);
                }
                Reprompt::GiveUp => outcomes.push(0),
            }
        }
        assert_eq!(outcomes, [1, 2, 0]);
        assert_eq!(
            reprompt(2, t, 2, 600, t.plus(600)),
            Reprompt::SignInAgain { attempts: 1, window_start: t.plus(600) }
        );
    }
}
