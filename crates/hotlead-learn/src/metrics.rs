//! Hold-out evidence: AUC, log loss, lift, gains, calibration and conversion per band.

use serde::{Deserialize, Serialize};

/// Area under the ROC curve: the chance that a random won lead scores above a random lost
/// one (ties count half). 0.5 when one class is absent.
pub fn auc(scores: &[f64], y: &[bool]) -> f64 {
    let positives = y.iter().filter(|&&w| w).count() as f64;
    let negatives = y.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return 0.5;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the positives' (average, for ties) ranks.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += order[i..=j].iter().filter(|&&k| y[k]).count() as f64 * average_rank;
        i = j + 1;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Mean negative log-likelihood of the outcomes under the probabilities.
pub fn log_loss(p: &[f64], y: &[bool]) -> f64 {
    if y.is_empty() {
        return 0.0;
    }
    let total: f64 = p
        .iter()
        .zip(y)
        .map(|(&p, &won)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            if won { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    total / y.len() as f64
}

/// Indices from the highest score to the lowest; ties keep the input order.
fn ranked(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

/// The share of all won leads found in the top `fraction` by score, and that share's
/// ratio to `fraction` (the lift).
pub fn top_fraction(scores: &[f64], y: &[bool], fraction: f64) -> (f64, f64) {
    let positives = y.iter().filter(|&&w| w).count();
    if positives == 0 || scores.is_empty() {
        return (0.0, 0.0);
    }
    let take = ((scores.len() as f64 * fraction).ceil() as usize).clamp(1, scores.len());
    let found = ranked(scores)[..take].iter().filter(|&&i| y[i]).count();
    let capture = found as f64 / positives as f64;
    (capture, capture / (take as f64 / scores.len() as f64))
}

/// A point of a curve, both axes in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

/// The ROC curve (false positive rate, true positive rate) and the cumulative gains curve
/// (share of leads contacted, share of won leads found), each at most `points` + 1 points.
pub fn curves(scores: &[f64], y: &[bool], points: usize) -> (Vec<Point>, Vec<Point>) {
    let positives = y.iter().filter(|&&w| w).count().max(1) as f64;
    let negatives = (y.len() as f64 - y.iter().filter(|&&w| w).count() as f64).max(1.0);
    let order = ranked(scores);
    let step = (order.len() / points.max(1)).max(1);
    let mut roc = vec![Point { x: 0.0, y: 0.0 }];
    let mut gains = vec![Point { x: 0.0, y: 0.0 }];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut last_emitted = 0;
    for (n, &i) in order.iter().enumerate() {
        if y[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_tie = order
            .get(n + 1)
            .is_none_or(|&next| scores[next] != scores[i]);
        if last_of_tie && n + 1 - last_emitted >= step || n + 1 == order.len() {
            last_emitted = n + 1;
            roc.push(Point {
                x: fp / negatives,
                y: tp / positives,
            });
            gains.push(Point {
                x: (n + 1) as f64 / order.len() as f64,
                y: tp / positives,
            });
        }
    }
    (roc, gains)
}

/// One bin of the calibration table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub leads: usize,
    pub mean_predicted: f64,
    pub observed: f64,
}

/// Leads grouped into `bins` equal-sized groups by predicted probability.
pub fn calibration(p: &[f64], y: &[bool], bins: usize) -> Vec<CalibrationBin> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let bins = bins.clamp(1, p.len().max(1));
    (0..bins)
        .filter_map(|b| {
            let slice = &order[b * order.len() / bins..(b + 1) * order.len() / bins];
            (!slice.is_empty()).then(|| CalibrationBin {
                leads: slice.len(),
                mean_predicted: slice.iter().map(|&i| p[i]).sum::<f64>() / slice.len() as f64,
                observed: slice.iter().filter(|&&i| y[i]).count() as f64 / slice.len() as f64,
            })
        })
        .collect()
}

/// Leads and conversion in one band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandConversion {
    pub band: String,
    pub leads: usize,
    pub won: usize,
    pub conversion: f64,
}

/// Conversion per band, for the given hot and warm thresholds.
pub fn by_band(scores: &[f64], y: &[bool], hot: f64, warm: f64) -> Vec<BandConversion> {
    ["hot", "warm", "cold"]
        .into_iter()
        .map(|band| {
            let members: Vec<usize> = (0..scores.len())
                .filter(|&i| match band {
                    "hot" => scores[i] >= hot,
                    "warm" => scores[i] >= warm && scores[i] < hot,
                    _ => scores[i] < warm,
                })
                .collect();
            let won = members.iter().filter(|&&i| y[i]).count();
            BandConversion {
                band: band.to_string(),
                leads: members.len(),
                won,
                conversion: if members.is_empty() {
                    0.0
                } else {
                    won as f64 / members.len() as f64
                },
            }
        })
        .collect()
}

/// The lowest score threshold under which at most `share` of the leads are at or above it
/// (so "hot" fits a capacity); when the leads tied at the top already exceed the share,
/// the top score (the smallest group there can be).
pub fn threshold_for_share(scores: &[f64], share: f64) -> Option<f64> {
    if scores.is_empty() || share <= 0.0 {
        return None;
    }
    let mut sorted = scores.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let allowed = (share * sorted.len() as f64).floor() as usize;
    if allowed >= sorted.len() {
        return sorted.last().copied();
    }
    // The lowest score above the first lead left out: ties at the edge stay out.
    let excluded = sorted[allowed];
    sorted[..allowed]
        .iter()
        .rev()
        .find(|&&s| s > excluded)
        .copied()
        .or(sorted.first().copied())
}

/// The threshold whose share of `scores` at or above it is nearest `share` (of two as
/// near, the higher threshold), among thresholds that leave someone above: ties in the
/// scores make some shares unreachable, and rules cannot split the top group. Where every
/// score is alike, the threshold above them all. Scores that are not numbers are left out.
pub fn threshold_nearest_share(scores: &[f64], share: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    if sorted.is_empty() || share <= 0.0 {
        return None;
    }
    sorted.sort_by(|a, b| b.total_cmp(a));
    let n = sorted.len() as f64;
    // Every lead scores alike: no threshold tells them apart, so nobody is hot.
    if sorted[0] == sorted[sorted.len() - 1] {
        return Some(sorted[0].floor() + 1.0);
    }
    let mut best: Option<(f64, f64)> = None;
    let mut i = 0;
    while i < sorted.len() {
        let value = sorted[i];
        while i < sorted.len() && sorted[i] == value {
            i += 1;
        }
        let gap = (i as f64 / n - share).abs();
        if best.is_none_or(|(_, g)| gap < g - 1e-12) {
            best = Some((value, gap));
        }
        if i as f64 / n > share {
            break;
        }
    }
    best.map(|(value, _)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_share_threshold_keeps_the_top_group_and_ignores_what_is_not_a_number() {
        // 70 % share at 10 vs 0 % above it: the top group stays hot (rules cannot split
        // a tie); nearest among the thresholds that keep someone hot.
        assert_eq!(
            threshold_nearest_share(&[10.0, 10.0, 10.0, 0.0, 5.0], 0.1),
            Some(10.0)
        );
        assert_eq!(
            threshold_nearest_share(&[4.0, 3.0, 2.0, 1.0], 0.5),
            Some(3.0)
        );
        // All alike: nobody.
        assert_eq!(threshold_nearest_share(&[2.0, 2.0], 0.1), Some(3.0));
        // A score that is not a number is left out (and never stalls it).
        assert_eq!(
            threshold_nearest_share(&[f64::NAN, 1.0, 0.0], 0.5),
            Some(1.0)
        );
    }

    #[test]
    fn auc_of_known_orders() {
        let y = [true, true, false, false];
        assert_eq!(auc(&[4.0, 3.0, 2.0, 1.0], &y), 1.0);
        assert_eq!(auc(&[1.0, 2.0, 3.0, 4.0], &y), 0.0);
        assert_eq!(auc(&[1.0, 1.0, 1.0, 1.0], &y), 0.5);
        assert_eq!(auc(&[3.0, 1.0, 2.0, 0.0], &y), 0.75);
    }

    #[test]
    fn log_loss_of_certain_and_coin_predictions() {
        assert!(log_loss(&[1.0, 0.0], &[true, false]) < 1e-12);
        assert!((log_loss(&[0.5, 0.5], &[true, false]) - 2f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn top_decile_capture_and_lift() {
        let scores: Vec<f64> = (0..100).map(f64::from).collect();
        let y: Vec<bool> = (0..100).map(|i| i >= 95).collect();
        let (capture, lift) = top_fraction(&scores, &y, 0.1);
        assert_eq!(capture, 1.0);
        assert!((lift - 10.0).abs() < 1e-9);
    }

    #[test]
    fn thresholds_fit_a_share() {
        let scores: Vec<f64> = (0..100).map(f64::from).collect();
        let t = threshold_for_share(&scores, 0.1).unwrap();
        assert_eq!(scores.iter().filter(|&&s| s >= t).count(), 10);
    }
}
