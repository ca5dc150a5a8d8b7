#!/usr/bin/python3
"""Trains the two sample models of the lesson and writes them into models/.

Features of an animal: (number of limbs, lays eggs, has hair).
- mammal: Linear(3, 8) - ReLU - Linear(8, 1) - Sigmoid, "is it a mammal?",
  written in seqserve's native text format (mammal/1/model.textproto).
- species: Linear(3, 16) - ReLU - Linear(16, 3) - Softmax over bird / mammal /
  reptile, exported with torch.onnx.export (species/1/model.onnx).

Run with Debian's python3-torch: /usr/bin/python3 models/make_models.py
"""
import os

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))

# (limbs, lays eggs, has hair) -> species: 0 bird, 1 mammal, 2 reptile
ANIMALS = [
    ((4, 0, 1), 1),  # dog
    ((4, 0, 1), 1),  # cat
    ((2, 0, 1), 1),  # human
    ((2, 0, 1), 1),  # kangaroo
    ((4, 1, 1), 1),  # platypus
    ((0, 0, 0), 1),  # dolphin
    ((0, 0, 0), 1),  # whale
    ((2, 1, 0), 0),  # chicken
    ((2, 1, 0), 0),  # eagle
    ((2, 1, 0), 0),  # penguin
    ((2, 1, 0), 0),  # ostrich
    ((0, 1, 0), 2),  # snake
    ((4, 1, 0), 2),  # lizard
    ((4, 1, 0), 2),  # crocodile
    ((4, 1, 0), 2),  # turtle
]


def train(model, loss_fn, x, y, steps=3000):
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    return loss.item()


def floats(tensor):
    return ", ".join(repr(float(v)) for v in tensor.flatten().tolist())


def write_textproto(body, path):
    lines = ["# Is it a mammal? (limbs, lays eggs, has hair) -> probability.",
             "# Written by models/make_models.py.",
             "input_width: 3"]
    for module in body:
        if isinstance(module, nn.Linear):
            lines.append("layers { linear { in_features: %d out_features: %d"
                         % (module.in_features, module.out_features))
            lines.append("  weight: [%s]" % floats(module.weight))
            lines.append("  bias: [%s] } }" % floats(module.bias))
        elif isinstance(module, nn.ReLU):
            lines.append("layers { relu {} }")
    lines.append("head: HEAD_SIGMOID")
    with open(path, "w") as out:
        out.write("\n".join(lines) + "\n")


def main():
    torch.manual_seed(0)
    x = torch.tensor([features for features, _ in ANIMALS], dtype=torch.float32)
    species = torch.tensor([label for _, label in ANIMALS])

    mammal_body = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
    loss = train(mammal_body, nn.BCEWithLogitsLoss(), x,
                 (species == 1).float().unsqueeze(1))
    print(f"mammal: final loss {loss:.5f}")
    os.makedirs(os.path.join(HERE, "mammal", "1"), exist_ok=True)
    write_textproto(mammal_body, os.path.join(HERE, "mammal", "1", "model.textproto"))

    species_body = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 3))
    loss = train(species_body, nn.CrossEntropyLoss(), x, species)
    print(f"species: final loss {loss:.5f}")
    model = nn.Sequential(*species_body, nn.Softmax(dim=-1)).eval()
    os.makedirs(os.path.join(HERE, "species", "1"), exist_ok=True)
    torch.onnx.export(model, torch.zeros(1, 3),
                      os.path.join(HERE, "species", "1", "model.onnx"),
                      input_names=["features"], output_names=["scores"],
                      dynamic_axes={"features": {0: "batch"}, "scores": {0: "batch"}},
                      opset_version=13)


if __name__ == "__main__":
    main()
