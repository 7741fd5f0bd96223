from projbench.cli import main

main()
