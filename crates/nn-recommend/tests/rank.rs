//! Top-N selection and the ranking metrics against hand-computed values.

use nn_recommend::rank::{evaluate_ranking, popularity_scores, top_n, RankingConfig};
use nn_recommend::RecError;

#[test]
fn top_n_is_the_sorted_best_excluding_seen_with_ties_by_index() {
    let scores = [0.5, 2.0, f32::NAN, 2.0, -1.0, 3.0, 0.5];
    assert_eq!(top_n(&scores, 3, &[]), vec![(5, 3.0), (1, 2.0), (3, 2.0)]);
    // Excluding item 5 and 1 (sorted list).
    assert_eq!(top_n(&scores, 3, &[1, 5]), vec![(3, 2.0), (0, 0.5), (6, 0.5)]);
    // More than remain: everything, NaN last.
    let all = top_n(&scores, 10, &[0, 1, 3, 5, 6]);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], (4, -1.0));
    assert_eq!(all[1].0, 2);
    assert!(all[1].1.is_nan());
    assert!(top_n(&scores, 0, &[]).is_empty());
}

#[test]
fn top_n_agrees_with_a_full_sort_on_a_large_catalogue() {
    // A deterministic pseudo-random catalogue with many ties.
    let m = 100_000;
    let scores: Vec<f32> = (0..m).map(|i| ((i as u64 * 2_654_435_761) % 1000) as f32).collect();
    let exclude: Vec<usize> = (0..m).step_by(7).collect();
    let got = top_n(&scores, 50, &exclude);
    let mut full: Vec<usize> = (0..m).filter(|i| i % 7 != 0).collect();
    full.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap().then(a.cmp(&b)));
    let want: Vec<(usize, f32)> = full[..50].iter().map(|&i| (i, scores[i])).collect();
    assert_eq!(got, want);
}

#[test]
fn metrics_match_hand_computed_values() {
    // 6 items; two users.
    // User 0 saw item 0 in training; test items {2, 4}.
    //   scores rank candidates 1..5 as 4, 1, 2, 3, 5 → top-2 = [4, 1].
    // User 1 saw items 1, 2; test item {5}; ranking 0, 3, 4, 5 → top-2 = [0, 3].
    let user_scores = [vec![9.0, 5.0, 4.0, 3.0, 6.0, 1.0], vec![4.0, 9.0, 9.0, 3.0, 2.0, 1.0]];
    let train = vec![vec![0], vec![1, 2]];
    let test = vec![vec![2, 4], vec![5]];
    let config = RankingConfig { hr_k: 2, ndcg_k: 2, recall_k: 3, coverage_k: 2 };
    let report = evaluate_ranking(|u| Ok(user_scores[u].clone()), &train, &test, 6, config).unwrap();
    assert_eq!(report.users, 2);
    // HR@2: user 0 hits (item 4 first), user 1 misses.
    assert_eq!(report.hit_rate, 0.5);
    // NDCG@2: user 0: DCG = 1/log2(2) = 1; IDCG = 1 + 1/log2(3). User 1: 0.
    let idcg = 1.0 + 1.0 / 3f64.log2();
    assert!((report.ndcg - (1.0 / idcg) / 2.0).abs() < 1e-12);
    // recall@3: user 0's top 3 = [4, 1, 2] holds both test items → 1; user 1's top 3
    // = [0, 3, 4] → 0.
    assert_eq!(report.recall, 0.5);
    // coverage@2: {4, 1} ∪ {0, 3} = 4 of 6 items.
    assert!((report.coverage - 4.0 / 6.0).abs() < 1e-12);
}

#[test]
fn test_items_seen_in_training_are_not_relevant_and_users_without_tests_are_skipped() {
    let scores = vec![1.0, 2.0, 3.0];
    // User 0's only test item was a training item: skipped. User 1 has none.
    let train = vec![vec![2], vec![], vec![0]];
    let test = vec![vec![2], vec![], vec![1]];
    let config = RankingConfig { hr_k: 1, ndcg_k: 1, recall_k: 1, coverage_k: 1 };
    let report = evaluate_ranking(|_| Ok(scores.clone()), &train, &test, 3, config).unwrap();
    assert_eq!(report.users, 1);
    // User 2: candidates 1, 2; best is 2, the test item is 1: a miss.
    assert_eq!((report.hit_rate, report.ndcg, report.recall), (0.0, 0.0, 0.0));
    assert!((report.coverage - 1.0 / 3.0).abs() < 1e-12);
}

#[test]
fn popularity_ranks_by_training_counts() {
    let pop = popularity_scores(&[3, 0, 7, 7]);
    assert_eq!(top_n(&pop, 3, &[]), vec![(2, 7.0), (3, 7.0), (0, 3.0)]);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let ok = |_: usize| Ok(vec![0.0f32; 3]);
    let cfg = RankingConfig::default();
    let err = |r: Result<_, RecError>| r.unwrap_err().to_string();
    assert!(err(evaluate_ranking(ok, &[vec![]], &[vec![], vec![]], 3, cfg)).contains("training lists for 1 users"));
    assert!(err(evaluate_ranking(ok, &[vec![]], &[vec![3]], 3, cfg)).contains("item index 3"));
    assert!(err(evaluate_ranking(ok, &[vec![]], &[vec![]], 3, cfg)).contains("no user has a test item"));
    let short = |_: usize| Ok(vec![0.0f32; 2]);
    assert!(err(evaluate_ranking(short, &[vec![]], &[vec![1]], 3, cfg)).contains("gave 2 scores"));
    let zero = RankingConfig { hr_k: 0, ..cfg };
    assert!(err(evaluate_ranking(ok, &[vec![]], &[vec![1]], 3, zero)).contains("at least 1"));
}

#[test]
fn cosine_similarities_by_formula_and_zero_vectors_give_zero() {
    use nn_recommend::rank::cosine_similarities;
    // Items: (1, 0), (1, 1), (0, 0), (-2, 0).
    let v = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, -2.0, 0.0];
    let c = cosine_similarities(&v, 2, 0);
    assert_eq!(c.len(), 4);
    assert!((c[0] - 1.0).abs() < 1e-6);
    assert!((c[1] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    assert_eq!(c[2], 0.0);
    assert!((c[3] + 1.0).abs() < 1e-6);
    assert_eq!(cosine_similarities(&v, 2, 2), vec![0.0; 4]);
    assert_eq!(cosine_similarities(&v, 2, 9), vec![0.0; 4]);
}
