from microlearn_grpc.cli import main

main()
