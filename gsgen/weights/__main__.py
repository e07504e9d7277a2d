"""``python -m gsgen.weights inspect FILE``: the network a weight file holds and how to use it."""

from gsgen.weights import schemes

if __name__ == "__main__":
  schemes.main()
