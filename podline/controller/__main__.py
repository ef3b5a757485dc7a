from podline.controller.daemon import main

main()
