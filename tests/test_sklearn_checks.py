"""scikit-learn's common estimator checks on TVEPretrainer, TVEClassifier and TVERegressor.

Most common checks feed random float matrices (3 to 10 columns, non-integer values) as X.
A TVEPretrainer's X is a task table: one entity id that must be a key of the entity table,
and one time. Such random input is rejected with an error saying so, which is the right
behaviour, so those checks are listed below as expected failures, each with its reason.
The checks that do not depend on X's content (cloning, parameters, repr, unfitted
behaviour, init side effects, 1-d input rejection) must pass.
"""

import warnings

from sklearn.utils.estimator_checks import parametrize_with_checks

from sktve import TVEClassifier, TVEPretrainer, TVERegressor
from sktve.datasets import make_synthetic_database

RANDOM_X = "random float X is not a task table of (entity id, time) rows"
NOT_TWO_COLUMNS = "X with other than 2 columns (entity id, time) is rejected"
NON_INTEGER_IDS = "random float ids are not keys of the entity table and are rejected"

EXPECTED_FAILED_CHECKS = {
    "check_fit_score_takes_y": NOT_TWO_COLUMNS,
    "check_estimators_overwrite_params": NON_INTEGER_IDS,
    "check_dont_overwrite_parameters": NOT_TWO_COLUMNS,
    "check_estimators_fit_returns_self": NON_INTEGER_IDS,
    "check_readonly_memmap_input": NON_INTEGER_IDS,
    "check_n_features_in_after_fitting": NOT_TWO_COLUMNS,
    "check_positive_only_tag_during_fit": NON_INTEGER_IDS,
    "check_estimators_dtypes": NOT_TWO_COLUMNS,
    "check_complex_data": "the task-table check reports the shape before any dtype check",
    "check_dtype_object": NOT_TWO_COLUMNS,
    "check_estimators_empty_data_messages": "empty X gets sktve's own message, not sklearn's",
    "check_pipeline_consistency": NOT_TWO_COLUMNS,
    "check_estimators_nan_inf": RANDOM_X + " (NaN ids/times get their own messages)",
    "check_estimator_sparse_tag": "sparse X is not a task table",
    "check_estimator_sparse_array": "sparse X is not a task table",
    "check_estimator_sparse_matrix": "sparse X is not a task table",
    "check_estimators_pickle": NOT_TWO_COLUMNS,
    "check_f_contiguous_array_estimator": NOT_TWO_COLUMNS,
    "check_transformer_data_not_an_array": NOT_TWO_COLUMNS,
    "check_transformer_general": NOT_TWO_COLUMNS,
    "check_transformer_preserve_dtypes": NOT_TWO_COLUMNS + "; output is always float32",
    "check_methods_sample_order_invariance": NOT_TWO_COLUMNS,
    "check_methods_subset_invariance": NOT_TWO_COLUMNS,
    "check_fit2d_1sample": NOT_TWO_COLUMNS,
    "check_fit2d_1feature": NOT_TWO_COLUMNS,
    "check_dict_unchanged": NOT_TWO_COLUMNS,
    "check_fit_idempotent": NON_INTEGER_IDS,
    "check_fit_check_is_fitted": NON_INTEGER_IDS,
    "check_n_features_in": NON_INTEGER_IDS,
    "check_fit2d_predict1d": NOT_TWO_COLUMNS,
}


_SHARED = {
    k: v
    for k, v in EXPECTED_FAILED_CHECKS.items()
    if not k.startswith("check_transformer") and k != "check_complex_data"
}
# fit(X, y, sample_weight=...): the checks of its weights fit on random float X first.
_SAMPLE_WEIGHT = {
    name: RANDOM_X + " (the weights are checked on real task tables in test_finetune.py)"
    for name in (
        "check_sample_weight_equivalence_on_dense_data",
        "check_sample_weights_list",
        "check_sample_weights_not_an_array",
        "check_sample_weights_not_overwritten",
        "check_sample_weights_pandas_series",
        "check_sample_weights_shape",
    )
}
FINETUNE_EXPECTED = {
    TVEClassifier: {
        **_SHARED,
        **_SAMPLE_WEIGHT,
        "check_classifiers_one_label_sample_weights": NON_INTEGER_IDS,
        "check_classifier_data_not_an_array": RANDOM_X,
        "check_classifiers_classes": NON_INTEGER_IDS,
        "check_classifiers_train": NON_INTEGER_IDS,
        "check_decision_proba_consistency": NON_INTEGER_IDS,
        "check_supervised_y_2d": NOT_TWO_COLUMNS,
    },
    TVERegressor: {
        **_SHARED,
        **_SAMPLE_WEIGHT,
        "check_complex_data": EXPECTED_FAILED_CHECKS["check_complex_data"],
        "check_regressor_data_not_an_array": NOT_TWO_COLUMNS,
        "check_regressors_int": NOT_TWO_COLUMNS,
        "check_regressors_no_decision_function": NOT_TWO_COLUMNS,
        "check_regressors_train": NOT_TWO_COLUMNS,
        "check_supervised_y_2d": NOT_TWO_COLUMNS,
    },
}


def _finetuner(cls):
    db = make_synthetic_database(n_customers=60, n_orders=800, random_state=0)
    return cls(
        database=db,
        entity_table="customers",
        init="random",
        pretrainer=TVEPretrainer(embedding_dim=8, fanouts=(4,)),
        hidden_dim=8,
        max_epochs=1,
        steps_per_epoch=1,
        batch_size=32,
        random_state=0,
    )


@parametrize_with_checks(
    [_finetuner(TVEClassifier), _finetuner(TVERegressor)],
    expected_failed_checks=lambda est: FINETUNE_EXPECTED[type(est)],
)
def test_finetuners_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


def _estimator():
    db = make_synthetic_database(n_customers=60, n_orders=800, random_state=0)
    return TVEPretrainer(
        database=db,
        entity_table="customers",
        window="30D",
        embedding_dim=8,
        fanouts=(4,),
        max_epochs=1,
        steps_per_epoch=1,
        batch_size=32,
        random_state=0,
    )


@parametrize_with_checks([_estimator()], expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


def test_expected_failures_are_all_real_checks():
    from sklearn.utils.estimator_checks import check_estimator

    names = {r["check_name"] for r in check_estimator(_estimator(), on_fail=None)}
    assert set(EXPECTED_FAILED_CHECKS) <= names
    for cls, expected in FINETUNE_EXPECTED.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = check_estimator(_finetuner(cls), on_fail=None)
        assert set(expected) == {r["check_name"] for r in results if r["status"] == "failed"}
