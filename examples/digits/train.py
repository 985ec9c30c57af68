"""Train the digits CNN (runs standalone, under `shipyard run`, and as each worker of a distributed
run: with torch.distributed initialised, the model is wrapped in DistributedDataParallel and each
worker trains on its share of the data)."""

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

import shipyard

from net import IMAGE_SHAPE, DigitsNet


def main() -> None:
    with shipyard.start_run(name="train"):
        params = shipyard.parameters(lr=0.01, epochs=10, batch_size=64, test_size=0.2, seed=0)
        torch.manual_seed(params["seed"])
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # a GPU when there is one
        distributed = dist.is_available() and dist.is_initialized()

        df = pd.read_csv(shipyard.input_path("data", "data/digits.csv"))
        images = df.drop(columns="label").to_numpy(dtype=np.float32).reshape(-1, *IMAGE_SHAPE)
        labels = df["label"].to_numpy()
        X_train, X_test, y_train, y_test = train_test_split(
            images, labels, test_size=params["test_size"], random_state=params["seed"], stratify=labels
        )
        train_set = TensorDataset(torch.from_numpy(X_train), torch.from_numpy(y_train))
        sampler = DistributedSampler(train_set, seed=params["seed"]) if distributed else None
        loader = DataLoader(
            train_set, batch_size=params["batch_size"], shuffle=sampler is None, sampler=sampler
        )

        net = DigitsNet().to(device)
        model = nn.parallel.DistributedDataParallel(net) if distributed else net
        optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"])
        loss_fn = nn.CrossEntropyLoss()
        for epoch in range(params["epochs"]):
            if sampler is not None:
                sampler.set_epoch(epoch)
            model.train()
            total = 0.0
            for x, y in loader:
                optimizer.zero_grad()
                loss = loss_fn(model(x.to(device)), y.to(device))
                loss.backward()
                optimizer.step()
                total += loss.item() * len(y)
            shipyard.log_metric("train_loss", total / len(loader.sampler), step=epoch)

        net.eval()
        with torch.no_grad():
            predicted = net(torch.from_numpy(X_test).to(device)).argmax(dim=1).cpu().numpy()
        accuracy = float((predicted == y_test).mean())
        print(f"accuracy {accuracy:.4f} on {len(y_test)} held-out images (lr={params['lr']}, {device.type})")
        shipyard.log_metric("accuracy", accuracy)
        shipyard.log_metric("eval_rows", len(y_test))  # the gate refuses fewer than gate.min_eval_rows
        shipyard.set_tag("device", device.type)
        shipyard.set_tag("world_size", dist.get_world_size() if distributed else 1)
        # PyTorch flavor; the signature comes from the example: float32 images of shape (-1, 8, 8).
        shipyard.log_model(net.cpu(), "model", input_example=X_train[:3])


if __name__ == "__main__":
    main()
