"""How bvaex meets the machine: process-wide memory settings, XLA compiler options, atomic files, user errors."""
