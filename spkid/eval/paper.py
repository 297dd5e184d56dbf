"""The figures the paper reports (Kwon et al., VoxSRC 2020, Table 2), to set beside ours.

``TABLE2[row][list]`` is (EER %, MinDCF with P_target = 0.05) as printed in the paper, for the
lists stage 2 names ``vox1_O``, ``vox1_E``, ``vox1_H`` (the cleaned VoxCeleb1 lists),
``voxsrc19_test`` and ``voxsrc20_val``. F1 and F2 are the paper's fusions tuned on the VoxSRC
2020 validation list for EER (weights 3·HA4 + 3·EA4 + 1·EA5 + 1·HA6) and for MinDCF.
"""

from __future__ import annotations

from dataclasses import dataclass

LISTS = ("vox1_O", "vox1_E", "vox1_H", "voxsrc19_test", "voxsrc20_val")
FUSIONS = ("F1", "F2")
F1_WEIGHTS = {"HA4": 3, "EA4": 3, "EA5": 1, "HA6": 1}

# Config: (#Params, Loss, Aug., BN), and the ten figures in the order of LISTS, EER then MinDCF.
_FAMILY = {"Q": ("1.4M", False), "QA": ("1.4M", True), "H": ("8.0M", False), "HA": ("8.0M", True),
           "EA": ("14.7M", True)}
_LOSSES = ("AM-softmax", "AAM-softmax", "AP", "AP+softmax")
_ROWS = """
Q1  1.67 0.121 1.96 0.131 3.54 0.213 2.20 0.132 5.22 0.295
Q2  1.57 0.112 1.75 0.118 3.24 0.199 2.09 0.124 4.82 0.270
Q3  1.58 0.138 1.87 0.136 3.62 0.239 2.14 0.150 5.32 0.320
Q4  1.47 0.119 1.78 0.130 3.44 0.229 2.04 0.143 5.09 0.310
Q5  1.60 0.128 1.80 0.119 3.20 0.194 2.17 0.123 4.79 0.268
Q6  1.50 0.110 1.75 0.117 3.09 0.190 2.00 0.123 4.68 0.260
Q7  1.51 0.115 1.72 0.125 3.40 0.224 1.98 0.140 5.10 0.298
Q8  1.45 0.111 1.68 0.119 3.21 0.206 1.99 0.129 4.85 0.277
QA1 1.64 0.105 1.88 0.124 3.36 0.206 2.19 0.131 5.05 0.280
QA2 1.65 0.123 1.77 0.119 3.19 0.199 2.02 0.128 4.87 0.272
QA3 1.69 0.131 2.06 0.147 4.00 0.257 2.46 0.160 5.93 0.339
QA4 1.51 0.129 1.67 0.123 3.28 0.214 2.01 0.135 5.03 0.294
QA5 1.71 0.115 1.90 0.122 3.33 0.200 2.17 0.130 5.03 0.276
QA6 1.60 0.112 1.77 0.120 3.19 0.197 2.08 0.128 4.84 0.267
QA7 1.54 0.124 1.69 0.125 3.37 0.222 2.05 0.139 5.14 0.303
QA8 1.37 0.116 1.59 0.112 2.98 0.191 1.86 0.123 4.63 0.267
H1  1.77 0.128 2.00 0.130 3.51 0.208 2.20 0.130 5.12 0.288
H2  1.74 0.132 1.85 0.125 3.30 0.199 2.10 0.121 4.74 0.267
H3  1.44 0.116 1.74 0.122 3.35 0.211 1.92 0.131 4.95 0.287
H4  1.21 0.098 1.42 0.099 2.77 0.175 1.64 0.101 4.15 0.241
H5  1.44 0.101 1.62 0.107 2.85 0.174 1.84 0.111 4.28 0.243
H6  1.25 0.101 1.56 0.103 2.78 0.166 1.75 0.105 4.12 0.231
H7  1.20 0.102 1.52 0.110 3.01 0.194 1.70 0.116 4.50 0.270
H8  1.29 0.091 1.41 0.100 2.78 0.176 1.55 0.109 4.21 0.241
HA1 1.53 0.113 1.67 0.114 3.07 0.191 1.89 0.112 4.59 0.263
HA2 1.49 0.111 1.51 0.105 2.91 0.181 1.75 0.103 4.40 0.245
HA3 1.24 0.105 1.50 0.108 3.06 0.198 1.66 0.112 4.60 0.267
HA4 0.88 0.079 1.07 0.076 2.21 0.147 1.26 0.079 3.51 0.202
HA5 1.35 0.101 1.45 0.099 2.64 0.166 1.64 0.097 4.05 0.232
HA6 1.15 0.083 1.35 0.091 2.49 0.155 1.61 0.093 3.80 0.218
HA7 1.16 0.086 1.38 0.099 2.78 0.180 1.62 0.103 4.32 0.248
HA8 1.03 0.084 1.23 0.087 2.47 0.159 1.40 0.091 3.94 0.220
EA1 1.13 0.085 1.35 0.093 2.61 0.165 1.54 0.090 4.03 0.228
EA2 0.96 0.076 1.24 0.086 2.40 0.152 1.59 0.085 3.82 0.212
EA3 1.14 0.088 1.40 0.100 2.88 0.189 1.72 0.105 4.41 0.258
EA4 0.90 0.081 1.11 0.077 2.32 0.155 1.32 0.084 3.81 0.219
EA5 1.23 0.093 1.33 0.091 2.52 0.157 1.54 0.093 3.85 0.221
EA6 1.01 0.077 1.27 0.085 2.45 0.156 1.64 0.082 3.83 0.212
EA7 1.12 0.084 1.35 0.098 2.78 0.183 1.51 0.103 4.37 0.250
EA8 0.96 0.078 1.22 0.083 2.45 0.163 1.49 0.090 4.00 0.228
F1  0.73 0.056 0.93 0.065 1.87 0.122 1.18 0.066 3.08 0.174
F2  0.74 0.061 0.93 0.066 1.90 0.124 1.17 0.067 3.10 0.173
"""


@dataclass(frozen=True)
class Reported:
    """One figure pair of the paper; ``eer`` is a fraction, as in :class:`spkid.eval.metrics.Metrics`."""

    eer: float
    min_dcf: float


@dataclass(frozen=True)
class PaperRow:
    name: str
    params: str
    loss: str
    aug: str
    bn: str
    results: dict[str, Reported]


def _parse() -> dict[str, PaperRow]:
    table = {}
    for line in _ROWS.strip().splitlines():
        name, *vals = line.split()
        figs = [float(v) for v in vals]
        results = {lst: Reported(figs[2 * i] / 100, figs[2 * i + 1]) for i, lst in enumerate(LISTS)}
        family = name.rstrip("12345678")
        if family in _FAMILY:
            params, aug = _FAMILY[family]
            r = int(name[len(family):])
            table[name] = PaperRow(name, params, _LOSSES[(r - 1) % 4], "yes" if aug else "no",
                                   "yes" if r >= 5 else "no", results)
        else:
            table[name] = PaperRow(name, "-", "-", "-", "-", results)
    return table


TABLE2: dict[str, PaperRow] = _parse()
