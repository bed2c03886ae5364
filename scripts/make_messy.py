"""Writes datasets/messy_loans.csv: a synthetic loan-approval table with the problems real
tables have, for the data stage's tests and for trying `cargo xtask data profile`.

Standard library only, seeded, so the file is reproducible:

    python3 scripts/make_messy.py > datasets/messy_loans.csv

Columns and what the data stage should make of them:
- rownames: 1..n, an R-style row number (ID-like, dropped)
- customer_id: C00001.. (ID-like text, dropped)
- signup_date: YYYY-MM-DD (a date, expanded)
- last_login: YYYY-MM-DD HH:MM:SS, some missing (a date-time, expanded with the hour)
- income: numbers with missing values and a few extreme outliers (imputed, clipped)
- age: integers
- is_member: yes / no (a boolean)
- city: five common cities and two rare ones (rare ones merged)
- branch_code: 60 codes (frequency encoded)
- comment: free text written by a loan officer (hashed)
- country: always NL (constant, dropped)
- decision_letter: the letter sent after the decision (leaks the target, dropped)
- approved: the target, yes / no, about 3:1 imbalanced
"""

import csv
import math
import random
import sys

rng = random.Random(7)
N = 600
CITIES = ["Amsterdam", "Rotterdam", "Utrecht", "Eindhoven", "Groningen"]
RARE = ["Maastricht", "Zwolle"]
WORDS = ["stable", "income", "verified", "late", "payments", "previous", "loan", "employer",
         "contract", "permanent", "temporary", "savings", "high", "low", "debt", "requested",
         "amount", "small", "business", "owner", "student", "family", "house", "car"]

w = csv.writer(sys.stdout, lineterminator="\n")
w.writerow(["rownames", "customer_id", "signup_date", "last_login", "income", "age",
            "is_member", "city", "branch_code", "comment", "country", "decision_letter",
            "approved"])
for i in range(N):
    income = rng.lognormvariate(10.5, 0.4)
    age = rng.randint(19, 75)
    member = rng.random() < 0.4
    city = rng.choice(RARE) if i % 150 == 0 else rng.choice(CITIES)
    score = (math.log(income) - 10.5) * 2.5 + (0.8 if member else 0.0) + (age - 45) / 40
    approved = score + rng.gauss(0, 0.8) > -0.6
    day = rng.randint(0, 4 * 365)
    y, rest = 2020 + day // 365, day % 365
    month, dom = 1 + rest // 31 % 12, 1 + rest % 28
    login = None
    if rng.random() > 0.1:
        login = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} " \
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    shown_income = "" if rng.random() < 0.05 else f"{income:.2f}"
    if i in (17, 311, 512):
        shown_income = f"{income * 400:.2f}"  # a data-entry slip: extra zeros
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9)))
    w.writerow([
        i + 1, f"C{i + 1:05d}", f"{y}-{month:02d}-{dom:02d}", login or "", shown_income, age,
        "yes" if member else "no", city, f"B{rng.randint(1, 60):03d}", words, "NL",
        "approval letter" if approved else "rejection letter",
        "yes" if approved else "no",
    ])
