use super::build;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("proxy-{i}")).collect()
}

fn shares(table: &[u32], n: usize) -> Vec<f64> {
    let mut c = vec![0usize; n];
    for &b in table {
        c[b as usize] += 1;
    }
    c.iter().map(|&x| x as f64 / table.len() as f64).collect()
}

#[test]
fn every_slot_owned_and_equal_weights_share_evenly() {
    let ids = names(7);
    let backends: Vec<(&str, u32)> = ids.iter().map(|s| (s.as_str(), 1)).collect();
    let t = build(65537, &backends);
    assert_eq!(t.len(), 65537);
    for s in shares(&t, 7) {
        assert!((s - 1.0 / 7.0).abs() < 0.01, "share {s}");
    }
}

#[test]
fn weighted_shares_within_one_percent() {
    for weights in [
        vec![1u32, 9],
        vec![1, 2, 3, 4],
        vec![10, 10, 80],
        vec![5, 1, 1, 1, 1, 1],
    ] {
        let ids = names(weights.len());
        let backends: Vec<(&str, u32)> = ids
            .iter()
            .map(|s| s.as_str())
            .zip(weights.iter().copied())
            .collect();
        let t = build(65537, &backends);
        let total: u32 = weights.iter().sum();
        for (i, s) in shares(&t, weights.len()).iter().enumerate() {
            let want = weights[i] as f64 / total as f64;
            assert!(
                (s - want).abs() < 0.01,
                "weights {weights:?}: {i} has {s}, want {want}"
            );
        }
    }
}

#[test]
fn zero_weight_owns_nothing_and_empty_input_gives_empty_table() {
    let t = build(65537, &[("a", 0), ("b", 3)]);
    assert!(t.iter().all(|&b| b == 1));
    assert!(build(65537, &[("a", 0)]).is_empty());
    assert!(build(65537, &[]).is_empty());
}

#[test]
fn deterministic_and_independent_of_input_order() {
    let a = build(65537, &[("x", 1), ("y", 2), ("z", 3)]);
    let b = build(65537, &[("z", 3), ("x", 1), ("y", 2)]);
    assert_eq!(a, build(65537, &[("x", 1), ("y", 2), ("z", 3)]));
    // Same owner names per slot, whatever the indexes.
    let na = ["x", "y", "z"];
    let nb = ["z", "x", "y"];
    assert!(
        a.iter()
            .zip(&b)
            .all(|(&i, &j)| na[i as usize] == nb[j as usize])
    );
}

#[test]
fn removing_one_of_n_moves_at_most_one_nth_plus_one_percent() {
    for n in [3usize, 5, 10, 50] {
        let ids = names(n);
        let all: Vec<(&str, u32)> = ids.iter().map(|s| (s.as_str(), 1)).collect();
        let before = build(65537, &all);
        for removed in [0, n / 2, n - 1] {
            let rest: Vec<(&str, u32)> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != removed)
                .map(|(_, b)| *b)
                .collect();
            let after = build(65537, &rest);
            let moved = before
                .iter()
                .zip(&after)
                .filter(|&(&b, &a)| all[b as usize].0 != rest[a as usize].0)
                .count();
            let frac = moved as f64 / 65537.0;
            let bound = 1.0 / n as f64 + 0.01;
            assert!(
                frac <= bound,
                "n={n} removed {removed}: moved {frac} > {bound}"
            );
        }
    }
}
