//! Kubernetes quantities (`500m`, `2`, `1.5`, `512Mi`, `1e3`), computed in integers as the
//! apiserver does, so that what we accept is what a Deployment will accept.

use super::ValidationError;

/// Smallest memory limit that runc can start a box under.
const MIN_MEMORY: u128 = 16 << 20;
/// Quantities may not exceed 2^63-1 in Kubernetes.
const MAX_QUANTITY: u128 = i64::MAX as u128;

/// An exact rational value: `numerator / 10^scale`.
struct Exact {
    numerator: u128,
    scale: u32,
}

fn parse(s: &str) -> Result<Exact, &'static str> {
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err("must not be negative");
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() {
        return Err("expected a number such as 500m, 2, 1.5, 512Mi or 2Gi");
    }
    if frac.len() > 18 || int.len() > 19 {
        return Err("too many digits");
    }
    let digits = format!("{int}{frac}");
    let mut numerator: u128 = digits.parse().map_err(|_| "expected a number")?;
    let mut scale = frac.len() as u32;
    let (mul, div_exp): (u128, i32) = match suffix {
        "" => (1, 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().map_err(|_| "bad exponent")?;
            if !(-30..=30).contains(&e) {
                return Err("exponent out of range");
            }
            (1, e)
        }
        _ => return Err("unknown suffix: use m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi or Ei"),
    };
    numerator = numerator.checked_mul(mul).ok_or("too large")?;
    if div_exp >= 0 {
        numerator = numerator
            .checked_mul(10u128.pow(div_exp as u32))
            .ok_or("too large")?;
    } else {
        scale += (-div_exp) as u32;
    }
    Ok(Exact { numerator, scale })
}

/// `value * factor`, rounded up to an integer, as Kubernetes rounds sub-unit precision up.
fn ceil_times(e: &Exact, factor: u128) -> Result<u128, &'static str> {
    let n = e.numerator.checked_mul(factor).ok_or("too large")?;
    let d = 10u128
        .checked_pow(e.scale)
        .ok_or("too many decimal places")?;
    let v = n.div_ceil(d);
    if v > MAX_QUANTITY {
        Err("too large")
    } else {
        Ok(v)
    }
}

/// CPU in millicores. Zero is refused: a box needs some CPU request.
pub fn cpu_millis(value: &str) -> Result<u64, ValidationError> {
    let invalid = |rule| ValidationError::InvalidCpu {
        value: value.to_owned(),
        rule,
    };
    let millis = parse(value)
        .and_then(|e| ceil_times(&e, 1000))
        .map_err(invalid)?;
    if millis == 0 {
        return Err(invalid("must be greater than zero"));
    }
    u64::try_from(millis).map_err(|_| invalid("too large"))
}

/// Memory in bytes, at least 16Mi.
pub fn memory_bytes(value: &str) -> Result<u64, ValidationError> {
    let invalid = |rule| ValidationError::InvalidMemory {
        value: value.to_owned(),
        rule,
    };
    let bytes = parse(value)
        .and_then(|e| ceil_times(&e, 1))
        .map_err(invalid)?;
    if bytes < MIN_MEMORY {
        return Err(invalid("must be at least 16Mi"));
    }
    u64::try_from(bytes).map_err(|_| invalid("too large"))
}
