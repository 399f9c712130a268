//! The rule for generated extension secrets, one for the daemon (the built-in
//! extensions' secrets) and pbxctl (`pbxctl ext add`/`ext secret`): 16 characters
//! of `A-Z`, `a-z` and `0-9` (about 95 bits), drawn from the operating system's
//! random source without bias.

use std::io;

/// Length of a generated secret, in characters.
pub const SECRET_LEN: usize = 16;

/// The characters a generated secret is made of: ASCII letters and digits, so it
/// is typed on a phone's keypad menu and pasted into an INI file without quoting.
pub const SECRET_ALPHABET: &[u8; 62] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A new secret of [`SECRET_LEN`] characters of [`SECRET_ALPHABET`], from the
/// operating system's random source (`getrandom(2)`).
pub fn generate() -> io::Result<String> {
    from_random(|buf| getrandom::getrandom(buf).map_err(|e| io::Error::other(e.to_string())))
}

/// A secret from the bytes `fill` gives: each byte's top six bits pick a
/// character, and the two values past the alphabet's 62 are drawn again
/// (rejection, so that every character is equally likely).
pub fn from_random(mut fill: impl FnMut(&mut [u8]) -> io::Result<()>) -> io::Result<String> {
    let mut out = String::with_capacity(SECRET_LEN);
    let mut buf = [0u8; 32];
    while out.len() < SECRET_LEN {
        fill(&mut buf)?;
        for b in buf {
            let i = usize::from(b >> 2);
            if let Some(c) = SECRET_ALPHABET.get(i) {
                out.push(char::from(*c));
                if out.len() == SECRET_LEN {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// Whether `s` is of the form [`generate`] makes.
pub fn is_generated_form(s: &str) -> bool {
    s.len() == SECRET_LEN && s.bytes().all(|b| SECRET_ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_follow_the_rule_and_differ() {
        let a = generate().expect("random");
        let b = generate().expect("random");
        assert!(is_generated_form(&a), "{a}");
        assert!(is_generated_form(&b), "{b}");
        assert_ne!(a, b);
    }

    #[test]
    fn bytes_past_the_alphabet_are_drawn_again() {
        // 0xF8 and 0xFC map to 62 and 63: skipped; 0x00 is `A`, 0xF4 is `9`.
        let mut rounds = 0;
        let s = from_random(|buf| {
            rounds += 1;
            for (i, b) in buf.iter_mut().enumerate() {
                *b = if i % 2 == 0 { 0xF8 } else { 0xF4 };
            }
            Ok(())
        })
        .expect("ok");
        assert_eq!(s, "9".repeat(SECRET_LEN));
        assert_eq!(rounds, 1);
        let s = from_random(|buf| {
            buf.fill(0xFC);
            buf[0] = 0;
            Ok(())
        })
        .expect("ok");
        assert_eq!(s, "A".repeat(SECRET_LEN));
        assert!(from_random(|_| Err(io::Error::other("no entropy"))).is_err());
    }

    #[test]
    fn every_character_is_reachable() {
        let mut seen = [false; 62];
        for b in 0u8..=255 {
            if let Some(i) = SECRET_ALPHABET.get(usize::from(b >> 2)) {
                let pos = SECRET_ALPHABET.iter().position(|c| c == i).expect("in");
                seen[pos] = true;
            }
        }
        assert!(seen.iter().all(|s| *s));
    }
}
