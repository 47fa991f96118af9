"""Benchmark helpers: ``benchmarks.corpus`` generates large, realistic SkillMeat project trees."""
