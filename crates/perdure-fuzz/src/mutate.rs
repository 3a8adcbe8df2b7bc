//! The stable driver's mutator: SplitMix64 randomness (one seed replays the
//! same inputs) and libFuzzer's kinds of byte mutation: flip, replace,
//! insert, erase, copy, splice with another input, dictionary tokens,
//! interesting numbers.

/// SplitMix64: small, fast, and the same on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

/// Bytes that often sit on a boundary: zero, signs, the ends of ranges,
/// protobuf varint continuation, JSON and URL punctuation.
const INTERESTING: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, b'0', b'9', b'-', b'+', b'.', b'e', b'"', b'\\', b'{',
    b'}', b'[', b']', b',', b':', b'%', b'&', b'=', b'@', b'/', b'\n', b' ',
];

/// Applies one to eight random mutations to `input`, keeping it at most
/// `max_len` bytes; `other` is a second input to splice from.
pub fn mutate(
    rng: &mut Rng,
    input: &mut Vec<u8>,
    other: &[u8],
    dictionary: &[&[u8]],
    max_len: usize,
) {
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        match rng.below(11) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = rng.byte();
            }
            2 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            3 => {
                let at = rng.below(input.len() + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
                input.splice(at..at, bytes);
            }
            4 if !input.is_empty() => {
                let from = rng.below(input.len());
                let to = from + 1 + rng.below((input.len() - from).min(16));
                input.drain(from..to);
            }
            5 if !input.is_empty() => {
                let from = rng.below(input.len());
                let to = from + 1 + rng.below((input.len() - from).min(32));
                let chunk = input[from..to].to_vec();
                let at = rng.below(input.len() + 1);
                input.splice(at..at, chunk);
            }
            6 | 7 if !dictionary.is_empty() => {
                let token = dictionary[rng.below(dictionary.len())];
                let at = rng.below(input.len() + 1);
                if rng.below(2) == 0 {
                    input.splice(at..at, token.iter().copied());
                } else {
                    let end = (at + token.len()).min(input.len());
                    input.splice(at..end, token.iter().copied());
                }
            }
            8 if !other.is_empty() => {
                let keep = rng.below(input.len() + 1);
                let from = rng.below(other.len());
                input.truncate(keep);
                input.extend_from_slice(&other[from..]);
            }
            9 if input.len() > 1 => {
                let keep = rng.below(input.len());
                input.truncate(keep);
            }
            10 if input.len() > 1 => {
                let a = rng.below(input.len());
                let b = rng.below(input.len());
                input.swap(a, b);
            }
            _ => {
                let at = rng.below(input.len() + 1);
                input.insert(at, INTERESTING[rng.below(INTERESTING.len())]);
            }
        }
    }
    input.truncate(max_len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_mutations() {
        let dictionary: &[&[u8]] = &[b"token"];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut input = b"{\"v\":1}".to_vec();
            for _ in 0..100 {
                mutate(&mut rng, &mut input, b"other", dictionary, 64);
            }
            input
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn inputs_stay_within_the_length_limit() {
        let mut rng = Rng::new(1);
        let mut input = Vec::new();
        for _ in 0..10_000 {
            mutate(&mut rng, &mut input, b"0123456789", &[b"abcdef"], 32);
            assert!(input.len() <= 32);
        }
    }
}
