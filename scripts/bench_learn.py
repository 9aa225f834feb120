"""The peers for `hotlead learn` on one hold-out split.

Reads the CSV export and the split that `hotlead learn --out DIR` wrote (split.csv), and
on exactly those training rows fits
- scikit-learn's LogisticRegression the way the data README's reference does (numeric
  columns median-imputed and standardised, categoricals one-hot, L2, C=1, lbfgs);
- an optbinning Scorecard (BinningProcess with its default optimal binning of every
  column, then a logistic regression on the weights of evidence), the scorecard tool
  analysts know.
Prints each one's hold-out AUC and fit seconds (and the scorecard's number of bins) as
JSON.

Usage: python scripts/bench_learn.py DATA.csv SPLIT.csv OUTCOME_COLUMN=VALUE EXCLUDE,...
"""

import csv
import json
import sys
import time

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

MISSING = {"", "unknown", "n/a", "na", "null", "none", "nan", "-"}


def main():
    data_path, split_path, outcome, exclude = sys.argv[1:5]
    column, won = outcome.split("=", 1)
    excluded = {c for c in exclude.split(",") if c}
    with open(data_path, newline="", encoding="utf-8") as f:
        sample = f.readline()
        delimiter = max([",", ";", "\t"], key=sample.count)
        f.seek(0)
        reader = csv.reader(f, delimiter=delimiter)
        header = next(reader)
        rows = {line: row for line, row in enumerate(reader, start=2)}
    with open(split_path, newline="", encoding="utf-8") as f:
        split = {int(r["line"]): r["part"] for r in csv.DictReader(f)}

    target = header.index(column)
    features = [i for i, h in enumerate(header) if i != target and h not in excluded]
    numeric, categorical = [], []
    for i in features:
        values = [r[i] for r in rows.values() if r[i].strip().lower() not in MISSING]
        try:
            [float(v) for v in values]
            numeric.append(i)
        except ValueError:
            categorical.append(i)

    def matrix(lines):
        out = []
        for line in lines:
            row = rows[line]
            out.append(
                [float(row[i]) if row[i].strip().lower() not in MISSING else np.nan for i in numeric]
                + [row[i] for i in categorical]
            )
        return np.array(out, dtype=object)

    train = [l for l, p in split.items() if p == "training"]
    test = [l for l, p in split.items() if p == "holdout"]
    y_train = np.array([rows[l][target].strip().lower() == won.lower() for l in train])
    y_test = np.array([rows[l][target].strip().lower() == won.lower() for l in test])
    n_num = len(numeric)
    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), list(range(n_num))),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(range(n_num, n_num + len(categorical)))),
        ]
    )
    model = Pipeline([("pre", pre), ("lr", LogisticRegression(C=1.0, max_iter=1000))])
    x_train, x_test = matrix(train), matrix(test)
    started = time.perf_counter()
    model.fit(x_train, y_train)
    seconds = time.perf_counter() - started
    auc = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])
    out = {"auc": auc, "fit_seconds": seconds, "training": len(train), "holdout": len(test)}

    # The scorecard peer: optbinning on the same rows.
    try:
        import pandas as pd
        from optbinning import BinningProcess, Scorecard
    except ImportError:
        out["scorecard"] = None
    else:
        names = [header[i] for i in numeric + categorical]
        frame_train = pd.DataFrame(x_train, columns=names)
        frame_test = pd.DataFrame(x_test, columns=names)
        for name in names[:n_num]:
            frame_train[name] = frame_train[name].astype(float)
            frame_test[name] = frame_test[name].astype(float)
        process = BinningProcess(
            variable_names=names, categorical_variables=names[n_num:]
        )
        card = Scorecard(
            binning_process=process,
            estimator=LogisticRegression(max_iter=1000),
            scaling_method="min_max",
            scaling_method_params={"min": 0, "max": 100},
        )
        started = time.perf_counter()
        card.fit(frame_train, y_train)
        card_seconds = time.perf_counter() - started
        # The detailed table lists every bin of the variables kept, with its leads; the
        # empty "Special" and "Missing" rows optbinning adds are not bins an analyst reads.
        table = card.table(style="detailed")
        used = list(card.binning_process_.get_support(names=True))
        out["scorecard"] = {
            "auc": roc_auc_score(y_test, card.predict_proba(frame_test)[:, 1]),
            "fit_seconds": card_seconds,
            "variables": len(used),
            "bins": int((table["Count"] > 0).sum()),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
