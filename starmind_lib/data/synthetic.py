"""A deterministic generator of simple TinyStories-like stories.

For tests and the ``smoke`` profile only: it proves the pipeline runs, it is not
the study's data. The same ``(n, seed)`` always gives the same stories, on any
machine (``random.Random`` with an integer seed is stable across platforms).
"""
from __future__ import annotations

import random

NAMES = ["Lily", "Ben", "Tom", "Mia", "Sam", "Anna", "Max", "Sue", "Tim", "Lucy", "Jack", "Zoe"]
ANIMALS = ["cat", "dog", "bird", "frog", "bunny", "duck", "fox", "bear"]
PLACES = ["park", "garden", "forest", "beach", "house", "school", "farm", "river"]
OBJECTS = ["ball", "kite", "box", "hat", "toy car", "flower", "book", "cake", "red balloon", "shiny stone"]
FEELINGS = ["happy", "sad", "scared", "excited", "angry", "proud", "curious", "tired"]
ADJECTIVES = ["big", "small", "pretty", "funny", "kind", "little", "brave", "shiny"]
OPENINGS = ["Once upon a time, there was a {adj} {who} named {name}.",
            "One day, {name} went to the {place}.",
            "Once there was a {adj} {who} called {name}.",
            "{name} and {friend} were best friends."]
MIDDLES = ["{name} found a {obj} in the {place}.",
           "{Pronoun} wanted to play with the {obj}.",
           "{name} saw a {animal} near the {place}.",
           "The {animal} was {feeling}.",
           "{name} felt {feeling}.",
           "\"Can I play with your {obj}?\" asked {friend}.",
           "\"Yes, you can!\" said {name}.",
           "{name} and {friend} ran to the {place}.",
           "{Pronoun} said, \"I like this {adj} {obj}.\"",
           "The sun was warm and the sky was blue.",
           "{name}\u2019s mom smiled."]
ENDINGS = ["From that day on, {name} and {friend} were always {feeling}.",
           "{name} learned to share, and everyone was happy.",
           "They played all day and went home {feeling}.",
           "The end."]


def _fill(template: str, rng: random.Random, cast: dict) -> str:
    return template.format(adj=rng.choice(ADJECTIVES), obj=rng.choice(OBJECTS), place=rng.choice(PLACES),
                           animal=rng.choice(ANIMALS), feeling=rng.choice(FEELINGS), **cast)


def synthetic_story(rng: random.Random) -> str:
    name, friend = rng.sample(NAMES, 2)
    cast = {"name": name, "friend": friend, "who": rng.choice(["girl", "boy"] + ANIMALS),
            "Pronoun": rng.choice(["She", "He", "They"])}
    sentences = [_fill(rng.choice(OPENINGS), rng, cast)]
    sentences += [_fill(rng.choice(MIDDLES), rng, cast) for _ in range(rng.randint(2, 8))]
    sentences.append(_fill(rng.choice(ENDINGS), rng, cast))
    # Some stories have two paragraphs, as TinyStories does.
    cut = rng.randint(1, len(sentences) - 1) if rng.random() < 0.4 else len(sentences)
    return " ".join(sentences[:cut]) + ("\n" + " ".join(sentences[cut:]) if cut < len(sentences) else "")


def synthetic_stories(n: int, seed: int = 0) -> list[str]:
    """``n`` deterministic synthetic stories."""
    rng = random.Random(seed)
    return [synthetic_story(rng) for _ in range(n)]
