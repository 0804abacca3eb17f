#!/usr/bin/env python3
"""One PNG per experiment from the benchmark CSV files (bench/README.md).

usage: plot.py DIR    reads DIR/<driver>.csv, writes DIR/<driver>.png

Every CSV row is a median with its min and max over the runs; points are
medians, error bars the min-max range. Drivers whose CSV is missing are
skipped, so a partial run still plots what it has.
"""
import csv
import os
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    """{experiment: {series: [(size, median, min, max)]}} in file order."""
    data = OrderedDict()
    unit = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            exp = data.setdefault(row["experiment"], OrderedDict())
            exp.setdefault(row["series"], []).append(
                (float(row["size"]), float(row["median"]), float(row["min"]), float(row["max"]))
            )
            if not row["series"].startswith("ratio "):
                unit[row["experiment"]] = row["unit"]
    return data, unit


def values(series):
    """The measured series, without the ratio rows."""
    return OrderedDict((k, v) for k, v in series.items() if not k.startswith("ratio "))


def ratio_rows(series):
    """The ratio rows ("ratio <ours> / <baseline>"), named "<ours> / <baseline>"."""
    return OrderedDict((k[len("ratio "):], v) for k, v in series.items() if k.startswith("ratio "))


def size_label(x, _pos=None):
    x = int(x)
    if x >= 1 << 20 and x % (1 << 20) == 0:
        return "%d MiB" % (x >> 20)
    if x >= 1024 and x % 1024 == 0:
        return "%d KiB" % (x >> 10)
    return "%d B" % x


STYLE = {  # ours solid, raw dashed, UCX dotted
    "ours": dict(linestyle="-", marker="o"),
    "raw": dict(linestyle="--", marker="s"),
    "UCX": dict(linestyle=":", marker="^"),
}


def style(series):
    for key, st in STYLE.items():
        if series.startswith(key):
            return st
    return dict(linestyle="-", marker="o")


def lines(ax, series, logx=True, logy=False, sizes=True):
    for name, pts in series.items():
        pts.sort()
        x = [p[0] for p in pts]
        y = [p[1] for p in pts]
        err = [[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]]
        ax.errorbar(x, y, yerr=err, label=name, capsize=2, **style(name))
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    if sizes:
        ax.set_xticks(sorted({p[0] for pts in series.values() for p in pts}))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(size_label))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        for label in ax.get_xticklabels():
            label.set_rotation(45)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def ratios(ax, series, target=None, target_label=None):
    """The ratio rows (medians of per-run ratios, min-max bars) against size."""
    for name, pts in ratio_rows(series).items():
        pts.sort()
        base = name.split(" / ", 1)[1]
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts],
                    yerr=[[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]],
                    label=name, capsize=2, **style(base))
    if target:
        ax.axhline(target, color="red", linewidth=1, label=target_label)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(size_label))
    for label in ax.get_xticklabels():
        label.set_rotation(45)
    ax.set_ylabel("ratio")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def bars(ax, data, unit, logy=False):
    """Grouped bars: one group per experiment, its series side by side, the
    ratio ours / baseline written above each group."""
    rows = {g: ratio_rows(data[g]) for g in data}
    data = OrderedDict((g, values(v)) for g, v in data.items())
    groups = list(data.keys())
    per_group = max(len(data[g]) for g in groups)
    width = 0.8 / per_group
    colors = {}
    for j, g in enumerate(groups):
        for i, (s, pts) in enumerate(data[g].items()):
            _, med, mn, mx = pts[0]
            first = s not in colors
            color = colors.setdefault(s, "C%d" % len(colors))
            ax.bar(j + i * width, med, width, yerr=[[med - mn], [mx - med]], capsize=3, color=color,
                   label=s if first else None)
        meds = {s: pts[0][1] for s, pts in data[g].items()}
        text = "\n".join("%.2fx" % pts[0][1] for pts in rows[g].values())
        if text:
            ax.annotate(text, (j + width * (len(meds) - 1) / 2, max(meds.values())),
                        textcoords="offset points", xytext=(0, 12), ha="center", fontsize=8)
    ax.set_xticks([j + width * (len(data[g]) - 1) / 2 for j, g in enumerate(groups)])
    ax.set_xticklabels(groups, fontsize=8)
    ax.set_ylabel(unit)
    if logy:
        ax.set_yscale("log")
    ax.margins(y=0.15)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)


def plot_pingpong(data, unit, out):
    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 8), sharex=True, gridspec_kw=dict(height_ratios=[3, 2]))
    series = data["one-way latency"]
    lines(a, values(series))
    a.set_ylim(bottom=0)
    a.set_ylabel("one-way latency, ns")
    a.set_title("Ping-pong through shared memory, two processes on two CPUs")
    ratios(b, series, 1.1, "target: mapped <= 1.1x raw flag")
    b.set_ylabel("ours / baseline (median of per-run ratios)")
    b.set_xlabel("message size")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def plot_bandwidth(data, unit, out):
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    for col, direction in enumerate(("put", "get")):
        for row, pattern in enumerate(("hot", "stream")):
            ax = axes[row][col]
            exp = "%s bandwidth %s" % (direction, pattern)
            if exp not in data:
                continue
            lines(ax, values(data[exp]), logy=True)
            ax.set_ylabel("GB/s")
            ax.set_title("%s bandwidth, %s pattern" % (direction, pattern))
            tw = ax.twinx()
            for name, pts in ratio_rows(data[exp]).items():
                if "memcpy" in name:
                    pts.sort()
                    tw.plot([p[0] for p in pts], [p[1] for p in pts], color="gray", alpha=0.6, linewidth=1)
            tw.axhline(0.95, color="red", linewidth=0.8, alpha=0.6)
            tw.set_ylim(0, 1.5)
            tw.set_ylabel("ours / memcpy (gray), target 0.95 (red)", fontsize=8)
    fig.suptitle("put/get bandwidth: ours vs memcpy into a mapped memfd vs UCX (posix)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def plot_bars(title, logy):
    def plot(data, unit, out):
        fig, ax = plt.subplots(figsize=(9, 5.5))
        bars(ax, data, next(iter(unit.values())), logy=logy)
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(out, dpi=110)

    return plot


def plot_scale(data, unit, out):
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 5))
    lines(a, values(data["connect cycle vs segments published"]), logx=True, sizes=False)
    a.set_xscale("log")
    a.set_ylim(bottom=0)
    a.set_xlabel("segments published by the exporter")
    a.set_ylabel("us per connect + disconnect")
    a.set_title("connect cycle vs segments published")
    if "publish time per segment" in data:
        lines(b, data["publish time per segment"], logx=True, sizes=False)
        b.set_xscale("log")
        b.set_xlabel("segments published")
        b.set_ylabel("us per create + publish")
        b.set_title("publishing N segments: time per segment")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def plot_fanout(data, unit, out):
    fig, axes = plt.subplots(1, 4, figsize=(20, 5))
    panels = [
        ("connect cycle vs importers", "us per connect+map+unmap+disconnect", None),
        ("post to all", "ns per post (importers idle)", "ours importers idle"),
        ("post to all", "ns per post (importers asleep)", "ours importers asleep"),
        ("put throughput vs importers", "aggregate GB/s", None),
    ]
    for ax, (exp, ylabel, only) in zip(axes, panels):
        if exp not in data:
            continue
        series = {k: v for k, v in values(data[exp]).items() if only is None or k == only}
        lines(ax, series, logx=False, sizes=False)
        if only:  # the least-squares line: linear means the points sit on it
            pts = sorted(series[only])
            n = len(pts)
            sx = sum(p[0] for p in pts)
            sy = sum(p[1] for p in pts)
            sxx = sum(p[0] ** 2 for p in pts)
            sxy = sum(p[0] * p[1] for p in pts)
            d = n * sxx - sx * sx
            if d:
                slope = (n * sxy - sx * sy) / d
                icpt = (sy - slope * sx) / n
                xs = [pts[0][0], pts[-1][0]]
                ax.plot(xs, [icpt + slope * x for x in xs], color="red", linewidth=1,
                        label="fit: %.0f + %.1f N ns" % (icpt, slope))
                ax.legend(fontsize=8)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("importers (processes)")
        ax.set_ylabel(ylabel)
        ax.set_title(exp)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def plot_window(data, unit, out):
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    a, b, c, d = axes[0][0], axes[0][1], axes[1][0], axes[1][1]
    if "one-way latency" in data:
        lines(a, values(data["one-way latency"]))
        a.set_ylim(bottom=0)
        a.set_ylabel("one-way latency, ns")
        a.set_title("mapped ping-pong, window vs shm0")
    put = OrderedDict()
    for exp in ("put bandwidth hot", "put bandwidth stream"):
        for name, pts in values(data.get(exp, {})).items():
            put["%s, %s" % (name, exp.split()[-1])] = pts
    if put:
        lines(b, put, logy=True)
        b.set_ylabel("GB/s")
        b.set_title("rsm_memseg_import_put bandwidth, window vs shm0")
    every = OrderedDict()
    for exp, series in data.items():
        if exp.startswith("signal"):
            continue
        for name, pts in ratio_rows(series).items():
            every["%s (%s)" % (exp, name)] = pts
    for name, pts in every.items():
        pts.sort()
        c.errorbar([p[0] for p in pts], [p[1] for p in pts],
                   yerr=[[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]],
                   label=name, capsize=2, marker="o")
    c.axhline(1.0, color="red", linewidth=1)
    c.set_xscale("log", base=2)
    c.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(size_label))
    for label in c.get_xticklabels():
        label.set_rotation(45)
    c.set_ylabel("window / shm0 (median of per-run ratios)")
    c.set_title("ratios: 1.0 = the same as shm0")
    c.grid(True, which="both", alpha=0.3)
    c.legend(fontsize=7)
    signals = OrderedDict((k, v) for k, v in data.items() if k.startswith("signal"))
    if signals:
        bars(d, signals, "ns", logy=True)
        d.set_title("signal post -> wait round trip, ns (log)")
    fig.suptitle("window transport (/dev/shm files) vs shm0, same processes, same run")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


PLOTS = {
    "pingpong": plot_pingpong,
    "bandwidth": plot_bandwidth,
    "events": plot_bars("signal post -> wait round trip, two processes (ns, log scale)", True),
    "connect": plot_bars("connect cycle: ours vs raw SCM_RIGHTS fd pass + mmap (us)", False),
    "scale": plot_scale,
    "fanout": plot_fanout,
    "data": plot_bars("per-call cost of put8/get8 vs raw store/load + fence (ns)", False),
    "window": plot_window,
}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    failed = 0
    for name, fn in PLOTS.items():
        path = os.path.join(d, name + ".csv")
        if not os.path.exists(path):
            continue
        out = os.path.join(d, name + ".png")
        try:
            data, unit = load(path)
            if data:
                fn(data, unit, out)
                print("plot: wrote %s" % out)
        except Exception as e:  # one bad plot must not hide the others
            print("plot: %s: %s" % (out, e))
            failed = 1
        plt.close("all")
    sys.exit(failed)


if __name__ == "__main__":
    main()
