"""Differential tester: the same random AMQP sequences against RabbitMQ and Warren, transcripts
compared line by line.

    difftest.py --rabbitmq-url URL --warren-url URL [--seed S] [--sequences N] [--steps M]
                [--minutes T] [--no-save] [--verbose]

Usually started through `conformance/run --differential ...`, which installs pika, starts a
private RabbitMQ node and a Warren build, and stops both afterwards (see README.md beside this
file). First every saved scenario in scenarios/ is replayed, then N generated sequences
(sequence i of seed S uses the random seed `S * 1000003 + i`, so one sequence can be re-run on
its own with `--seed S --only i`).

Each sequence runs against both brokers at once (one thread each, own connections, the same
entity names under a fresh prefix). The first line where the normalised transcripts differ is
the sequence's difference; later lines usually follow from it and are not judged. A difference
matching a pattern of allow.txt is reported as allowed (with the allow-list's reason); any other
fails the run. A failing generated sequence is re-run to check that it reproduces, shrunk (delta
debugging: drop operations while a difference at the same kind of operation remains) and saved
as scenarios/<name>.json, which every later run replays. Standard library plus pika only.
"""

import argparse
import hashlib
import json
import os
import re
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from execute import Run  # noqa: E402
from generate import gen_sequence  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = os.path.join(HERE, "scenarios")
ALLOW = os.path.join(HERE, "allow.txt")
OUT = os.path.join(HERE, "out")
SEED_MUL = 1000003
RUN_TIMEOUT = 30  # seconds per sequence run, plus one per operation


def log(msg):
    print(f"[differential] {msg}", file=sys.stderr, flush=True)


def load_allow(path):
    """allow.txt: `REGEX ## REASON` per line (`#` at the start of a line is a comment). The
    regex is searched in the rendered difference `OPLINE || rabbitmq: LINE || warren: LINE`."""
    rules = []
    if not os.path.exists(path):
        return rules
    with open(path) as f:
        for n, line in enumerate(f, 1):
            s = line.rstrip("\n")
            if not s.strip() or s.lstrip().startswith("#"):
                continue
            if " ## " not in s:
                raise SystemExit(f"differential: {path}:{n}: want `REGEX ## REASON`")
            pat, reason = s.split(" ## ", 1)
            rules.append((re.compile(pat.strip()), reason.strip(), n))
    return rules


class Tester:
    def __init__(self, args):
        self.rabbit = args.rabbitmq_url
        self.warren = args.warren_url
        self.allow = load_allow(ALLOW)
        self.verbose = args.verbose
        self.ops_run = 0
        self.runs = 0

    def both(self, ops):
        """Runs `ops` on both brokers concurrently; returns (rabbitmq lines, warren lines)."""
        prefix = "d%s." % uuid.uuid4().hex[:10]
        runs = [Run(self.rabbit, prefix), Run(self.warren, prefix)]
        out = [None, None]

        def go(k):
            out[k] = runs[k].run(ops)

        # Daemon threads with a deadline: a broker that stops answering (no reply to an RPC)
        # ends that transcript with `<no answer ...>` instead of hanging the whole run.
        threads = [threading.Thread(target=go, args=(k,), daemon=True) for k in (0, 1)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + RUN_TIMEOUT + len(ops)
        for k, t in enumerate(threads):
            t.join(max(0.0, deadline - time.monotonic()))
            if out[k] is None:
                out[k] = list(runs[k].lines) + [f"<no answer within {RUN_TIMEOUT + len(ops)} s>"]
        self.ops_run += len(ops)
        self.runs += 1
        return out[0], out[1]

    @staticmethod
    def first_difference(r, w):
        """(index, op line, rabbitmq line, warren line) of the first differing line, or None."""
        op = ""
        for i in range(max(len(r), len(w))):
            a = r[i] if i < len(r) else "<end of transcript>"
            b = w[i] if i < len(w) else "<end of transcript>"
            if a.startswith("#") and a == b:
                op = a
            if a != b:
                return i, op, a, b
        return None

    def judge(self, r, w):
        """None (equal), ("allowed", diff, reason) or ("fail", diff, None)."""
        d = self.first_difference(r, w)
        if d is None:
            return None
        _, op, a, b = d
        text = f"{op} || rabbitmq: {a} || warren: {b}"
        for pat, reason, n in self.allow:
            if pat.search(text):
                return ("allowed", d, f"allow.txt:{n}: {reason}")
        return ("fail", d, None)

    @staticmethod
    def op_kind(oplinetext):
        return oplinetext.split(" ", 2)[1] if oplinetext.count(" ") >= 2 else oplinetext

    def shrink(self, ops, kind, budget_s):
        """ddmin: drop chunks of operations while an unallowed difference at an operation of
        the same kind remains. Stops at `budget_s` seconds with the smallest sequence so far."""
        deadline = time.monotonic() + budget_s

        def fails(cand):
            if not cand:
                return False
            res = self.judge(*self.both(cand))
            return res is not None and res[0] == "fail" and self.op_kind(res[1][1]) == kind

        n = 2
        while len(ops) >= 2 and time.monotonic() < deadline:
            chunk = max(1, len(ops) // n)
            reduced = False
            for start in range(0, len(ops), chunk):
                if time.monotonic() >= deadline:
                    break
                cand = ops[:start] + ops[start + chunk:]
                if fails(cand):
                    ops = cand
                    n = max(n - 1, 2)
                    reduced = True
                    break
            if not reduced:
                if chunk == 1:
                    break
                n = min(len(ops), n * 2)
        return ops

    def report(self, label, res, r, w):
        status, (i, op, a, b), reason = res
        head = "ALLOWED" if status == "allowed" else "DIFFERENCE"
        lines = [f"{head} in {label} at transcript line {i}:", f"  op:       {op}",
                 f"  rabbitmq: {a}", f"  warren:   {b}"]
        if reason:
            lines.append(f"  reason:   {reason}")
        print("\n".join(lines), flush=True)
        if status == "fail" or self.verbose:
            os.makedirs(OUT, exist_ok=True)
            base = os.path.join(OUT, re.sub(r"[^A-Za-z0-9_.-]", "_", label))
            for suffix, lines_ in ((".rabbitmq.txt", r), (".warren.txt", w)):
                with open(base + suffix, "w") as f:
                    f.write("\n".join(lines_) + "\n")
            print(f"  transcripts: {base}.rabbitmq.txt / .warren.txt", flush=True)


def signature(diff):
    """What makes two differences "the same" for saving: both lines, channel numbers and
    transcript positions left out."""
    return re.sub(r"\bch\d\b", "ch", diff[2]) + " | " + re.sub(r"\bch\d\b", "ch", diff[3])


def saved_signatures():
    sigs = set()
    if os.path.isdir(SCENARIOS):
        for fn in os.listdir(SCENARIOS):
            if fn.endswith(".json"):
                d = json.load(open(os.path.join(SCENARIOS, fn)))["difference"]
                sigs.add(signature((0, d["op"], d["rabbitmq"], d["warren"])))
    return sigs


def save_scenario(ops, found_by, diff):
    """Writes scenarios/diff-<hash>.json unless a saved scenario shows the same difference."""
    if signature(diff) in saved_signatures():
        return None
    os.makedirs(SCENARIOS, exist_ok=True)
    blob = json.dumps(ops, sort_keys=True)
    name = "diff-" + hashlib.sha1(blob.encode()).hexdigest()[:10]
    path = os.path.join(SCENARIOS, name + ".json")
    with open(path, "w") as f:
        json.dump({"found_by": found_by,
                   "difference": {"op": diff[1], "rabbitmq": diff[2], "warren": diff[3]},
                   "ops": ops}, f, indent=1, sort_keys=True)
        f.write("\n")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rabbitmq-url", required=True)
    ap.add_argument("--warren-url", required=True)
    ap.add_argument("--seed", type=int, default=None,
                    help="random seed (default: derived from the time; printed)")
    ap.add_argument("--sequences", type=int, default=20, help="generated sequences (default 20)")
    ap.add_argument("--steps", type=int, default=25, help="operations per sequence (default 25)")
    ap.add_argument("--minutes", type=float, default=0,
                    help="keep generating until this many minutes have passed (overrides "
                         "--sequences)")
    ap.add_argument("--only", type=int, default=None, help="run only sequence i of the seed")
    ap.add_argument("--no-replay", action="store_true", help="skip the saved scenarios")
    ap.add_argument("--no-save", action="store_true",
                    help="do not shrink and save failing sequences")
    ap.add_argument("--shrink-seconds", type=float, default=90)
    ap.add_argument("--verbose", action="store_true",
                    help="also write transcripts of allowed differences to out/")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int(time.time()) % 100000
    t = Tester(args)
    t0 = time.monotonic()
    fails, allowed, equal = [], [], 0

    if not args.no_replay and os.path.isdir(SCENARIOS):
        for fn in sorted(os.listdir(SCENARIOS)):
            if not fn.endswith(".json"):
                continue
            sc = json.load(open(os.path.join(SCENARIOS, fn)))
            r, w = t.both(sc["ops"])
            res = t.judge(r, w)
            label = f"scenario {fn}"
            if res is None:
                equal += 1
                log(f"{label}: same")
                continue
            t.report(label, res, r, w)
            (fails if res[0] == "fail" else allowed).append(label)

    log(f"seed {seed}, {args.sequences if not args.minutes else 'unbounded'} sequences of "
        f"{args.steps} operations")
    i = 0
    while True:
        if args.only is not None:
            if i > 0:
                break
            i = args.only
        elif args.minutes:
            if time.monotonic() - t0 > args.minutes * 60:
                break
        elif i >= args.sequences:
            break
        sseed = seed * SEED_MUL + i
        ops = gen_sequence(sseed, args.steps)
        label = f"seed {seed} sequence {i}"
        r, w = t.both(ops)
        res = t.judge(r, w)
        if res is None:
            equal += 1
            if t.verbose:
                log(f"{label}: same")
        else:
            if res[0] == "fail":
                # Does it reproduce? A difference seen once is reported but not saved.
                r2, w2 = t.both(ops)
                res2 = t.judge(r2, w2)
                if res2 is None or res2[0] != "fail":
                    print(f"FLAKY in {label}: the difference did not reproduce", flush=True)
                    t.report(label, res, r, w)
                    fails.append(label + " (flaky)")
                    i += 1
                    continue
            t.report(label, res, r, w)
            if res[0] == "fail":
                fails.append(label)
                if not args.no_save and signature(res[1]) in saved_signatures():
                    log("same difference as a saved scenario: not shrunk or saved again")
                elif not args.no_save:
                    kind = t.op_kind(res[1][1])
                    small = t.shrink(ops, kind, args.shrink_seconds)
                    r3, w3 = t.both(small)
                    res3 = t.judge(r3, w3) or res
                    path = save_scenario(small, label, res3[1])
                    log(f"shrunk {len(ops)} -> {len(small)} operations: "
                        f"{path or 'same difference as a saved scenario, not saved again'}")
                    t.report(label + " shrunk", res3, r3, w3)
            else:
                allowed.append(label)
        i += 1

    dt = time.monotonic() - t0
    print(f"differential: {t.runs} sequence runs on each broker, {t.ops_run} operations each, "
          f"{dt:.0f} s; {equal} same, {len(allowed)} allowed differences, "
          f"{len(fails)} failing differences (seed {seed})", flush=True)
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
