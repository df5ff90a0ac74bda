"""Units of the potential: what φ = Σ q/r means, and the factors to the usual map units.

With positions in Å and charges in e, φ comes out in e/Å. Coulomb's constant turns that
into kcal/(mol·e) (×332.0637, as AMBER and CHARMM use), and dividing by kT at 298.15 K
(0.5925 kcal/mol) gives kT/e, the unit APBS maps are read in. φ is linear in the charges,
so a job applies the factor once, to the energies it stages, and every tile, the minimum,
the verification and the written field are in the unit asked for.
"""

from __future__ import annotations

from typing import Literal

Units = Literal["e/A", "kcal/mol/e", "kT/e"]
COULOMB_KCAL = 332.0637  # kcal·Å/(mol·e²)
KT_298_KCAL = 0.5925  # kcal/mol at 298.15 K
FACTORS: dict[str, float] = {"e/A": 1.0, "kcal/mol/e": COULOMB_KCAL, "kT/e": COULOMB_KCAL / KT_298_KCAL}
UNITS: tuple[str, ...] = tuple(FACTORS)


def factor(units: str) -> float:
    """The number φ in e/Å is multiplied by to be in ``units``.

    >>> factor("e/A"), factor("kcal/mol/e"), round(factor("kT/e"), 2)
    (1.0, 332.0637, 560.45)
    """
    return FACTORS[units]
