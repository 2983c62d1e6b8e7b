"""The run's splits: the original's seeded train/valid split of one labelled file, and its one check.

Story Cloze splits its val file so (`rocstories.rocstories`), as does a generic dataset without a
dev file (`inputs.carve_out`): `n_valid` rows for validation, the rest (at least 2) for training.
"""
from gpt1_tf.errors import DataError

# The seed the original passed to train_test_split for the train/valid split of the val file.
SEED = 3535999445


def check_room(found, n, n_valid, path):
    """Refuse a file of `n` rows (`found` says them, e.g. "11 stories") too short for n_valid + 2."""
    if n < n_valid + 2:
        raise DataError(path, f"{found}, but n_valid={n_valid} needs at least {n_valid + 2} "
                              "(the rest, at least 2, is the train split)")


def split_valid(*columns, n_valid):
    """train_test_split of parallel columns with the original's seed: (train_0, valid_0, train_1, valid_1, ...)."""
    from sklearn.model_selection import train_test_split
    return train_test_split(*columns, test_size=n_valid, random_state=SEED)
