from pathlib import Path

from s5cli.training.logs import MetricsLog, plot_curves, read_metrics


def test_rows_merge_and_columns_union(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "metrics.csv")
    log.log(1, {"loss": 2.0, "lr": 0.1})
    log.log(2, {"loss": 1.5, "lr": 0.05})
    log.log(2, {"miou": 0.25}, prefix="val_")
    log.flush()
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines == ["iteration,loss,lr,val_miou", "1,2,0.1,", "2,1.5,0.05,0.25"]


def test_resume_drops_later_rows(tmp_path: Path) -> None:
    first = MetricsLog(tmp_path / "metrics.csv")
    for it in (1, 2, 3):
        first.log(it, {"loss": float(it)})
    first.flush()
    again = MetricsLog(tmp_path / "metrics.csv")
    again.resume(2)
    again.log(3, {"loss": 9.0})
    again.flush()
    assert [r["loss"] for r in read_metrics(tmp_path / "metrics.csv")] == [1.0, 2.0, 9.0]


def test_disabled_log_writes_nothing(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "metrics.csv", enabled=False)
    log.log(1, {"loss": 1.0})
    log.close()
    assert not (tmp_path / "metrics.csv").exists()


def test_curves_png(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "metrics.csv")
    for it in range(1, 6):
        log.log(it, {"loss": 1.0 / it, "mask_ratio": it / 10})
    log.log(5, {"miou": 0.3}, prefix="val_")
    log.flush()
    out = plot_curves(tmp_path / "metrics.csv", tmp_path / "curves.png")
    assert out is not None and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_curves(tmp_path / "none.csv", tmp_path / "x.png") is None


def test_tensorboard_gets_the_same_scalars(tmp_path: Path, monkeypatch) -> None:
    import s5cli.training.logs as logs

    class Writer:
        def __init__(self) -> None:
            self.scalars = []

        def add_scalar(self, key, value, step) -> None:
            self.scalars.append((key, value, step))

        def flush(self) -> None:
            pass

        def close(self) -> None:
            pass

    writer = Writer()
    monkeypatch.setattr(logs, "_tensorboard", lambda folder: writer)
    log = MetricsLog(tmp_path / "metrics.csv", tmp_path / "tb")
    log.log(4, {"loss": 0.5})
    log.log(4, {"miou": float("nan")}, prefix="val_")  # non-finite values stay out of TensorBoard
    log.close()
    assert writer.scalars == [("loss", 0.5, 4)]
