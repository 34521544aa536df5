"""A PySpark job for the end-to-end tests of real Spark on the simulated cluster.

Prints the sum of the squares of 1..N, computed in PARTITIONS tasks that each take at least
SECONDS, so that a test can act while the job runs (kill an executor midway). The test checks
the printed figure against its own formula, N(N+1)(2N+1)/6.

Usage: squares.py N PARTITIONS SECONDS
"""

import sys
import time

from pyspark.sql import SparkSession


def main(argv):
    if len(argv) != 4:
        sys.exit(f"usage: {argv[0]} N PARTITIONS SECONDS")
    n, partitions, seconds = int(argv[1]), int(argv[2]), float(argv[3])
    spark = SparkSession.builder.appName("squares").getOrCreate()

    def squares(numbers):
        time.sleep(seconds)
        return [sum(x * x for x in numbers)]

    total = (
        spark.sparkContext.parallelize(range(1, n + 1), partitions)
        .mapPartitions(squares)
        .sum()
    )
    print(f"sum of squares of 1..{n} = {total}", flush=True)
    spark.stop()


if __name__ == "__main__":
    main(sys.argv)
